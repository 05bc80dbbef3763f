import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { TEST_REDIS_URL } from "./services.js";

/** A Redis key prefix no other test uses, so queues of parallel tests never meet. */
export function uniqueRedisPrefix(label = "t"): string {
  return `hanzo-test:${label}:${randomBytes(4).toString("hex")}`;
}

export function createTestRedis(): Redis {
  // BullMQ workers require maxRetriesPerRequest: null on their connection.
  return new Redis(TEST_REDIS_URL, { maxRetriesPerRequest: null });
}

/** Deletes every key under a prefix once the test is done with it. */
export async function clearRedisPrefix(redis: Redis, prefix: string): Promise<void> {
  let cursor = "0";
  do {
    const [next, keys] = await redis.scan(cursor, "MATCH", `${prefix}*`, "COUNT", 500);
    cursor = next;
    if (keys.length > 0) await redis.del(...keys);
  } while (cursor !== "0");
}
