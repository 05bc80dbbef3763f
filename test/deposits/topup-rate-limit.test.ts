import { randomBytes } from "node:crypto";
import { Redis } from "ioredis";
import { describe, expect } from "vitest";
import { RateLimiter } from "../../src/http/middleware/rate-limiter.js";
import { createTestApp, type TestApp } from "../support/app.js";
import { freePort } from "../support/free-port.js";
import { waitFor } from "../support/process.js";
import { createTestRedis } from "../support/redis.js";
import { chainTest } from "../support/chain-fixtures.js";

type Replicas = {
  prefix: string;
  connections: Redis[];
  connect(redis?: Redis): Redis;
  replica(redis?: Redis): TestApp;
};

/**
 * `replicas`: API replicas with the top-up limit, each on a Redis connection of its own, sharing
 * the file's Redis prefix (`redis`). The stack makes orgs, keys and deposit addresses; its own app
 * has no limiter.
 */
const it = chainTest.extend<{ replicas: Replicas }>({
  replicas: [
    async ({ db, chain, stack, redis }, use) => {
      const prefix = redis.prefix;
      const connections: Redis[] = [];
      const connect = (redis: Redis = createTestRedis()) => {
        connections.push(redis);
        return redis;
      };
      /** An API replica of its own (its own Redis connection), allowing 3 top-ups per org per 30 s. */
      const replica = (redis: Redis = connect()): TestApp =>
        createTestApp({
          sql: db.appSql,
          config: {
            RPC_URL: chain.rpcUrl,
            CHAIN_ID: String(chain.chainId),
            HUSD_ADDRESS: chain.husd,
            DEPOSIT_FACTORY_ADDRESS: chain.factory,
            HUSD_TOPUP_RATE_LIMIT: "3",
            HUSD_TOPUP_RATE_PERIOD_SECONDS: "30",
          },
          extra: { chain: stack.chainClient, rateLimiter: new RateLimiter(redis, prefix) },
        });
      try {
        await use({ prefix, connections, connect, replica });
      } finally {
        for (const r of connections) r.disconnect();
      }
    },
    { scope: "file" },
  ],
});

/** POST /v1/billing/husd/topups is limited per org, and the limit is one across API replicas. */
describe("HUSD top-ups: rate limit per org, shared by every replica", () => {
  it.scoped({ redisLabel: "topup-rate" });

  // Each allowed call looks a hash up on the chain: 422 transaction_not_found.
  const topup = (app: TestApp, key: string) =>
    app.call("POST", "/v1/billing/husd/topups", { key, body: { tx_hash: `0x${randomBytes(32).toString("hex")}` } });

  it("answers 429 rate_limited with Retry-After once an org has used its limit across two replicas; other orgs are unaffected", async ({
    stack,
    replicas: { connections, replica },
  }) => {
    const [a, b] = [replica(), replica()];
    await Promise.all(connections.map((r) => r.ping())); // ready: until then each counts in memory
    const org = await stack.orgWithAddress("Busy Co");
    const other = await stack.orgWithAddress("Quiet Co");
    for (const app of [a, b, a]) expect((await topup(app, org.orgKey)).json.error.code).toBe("transaction_not_found");
    const limited = await topup(b, org.orgKey);
    expect(limited.status).toBe(429);
    expect(limited.json.error).toMatchObject({
      type: "rate_limit_error",
      code: "rate_limited",
      request_id: expect.stringMatching(/^req_/),
    });
    const retryAfter = Number(limited.headers.get("retry-after"));
    expect(Number.isInteger(retryAfter)).toBe(true);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(30); // the window (30 s) started with the first top-up
    expect((await topup(a, org.orgKey)).status).toBe(429);
    expect((await topup(a, other.orgKey)).json.error.code).toBe("transaction_not_found");
    // Only this endpoint is limited.
    expect((await a.call("GET", "/v1/billing/husd/deposits", { key: org.orgKey })).status).toBe(200);
  });

  it("gives a request back after the time Retry-After announced, not before", async ({
    replicas: { prefix, connect },
  }) => {
    const redis = connect();
    await redis.ping(); // ready: until then the limiter counts in memory (as when Redis is down)
    const limiter = new RateLimiter(redis, prefix);
    const rule = { limit: 2, periodMs: 2_000 };
    const bucket = `refill-${randomBytes(4).toString("hex")}`;
    expect(await limiter.take(bucket, rule)).toEqual({ allowed: true });
    expect(await limiter.take(bucket, rule)).toEqual({ allowed: true });
    const denied = await limiter.take(bucket, rule);
    if (denied.allowed) throw new Error("a third request within the period was allowed");
    expect(denied.retryAfterMs).toBeGreaterThan(0);
    expect(denied.retryAfterMs).toBeLessThanOrEqual(2_000);
    const deniedAt = Date.now();
    // A refused attempt costs nothing, so polling until allowed finds the announced moment.
    await waitFor(async () => (await limiter.take(bucket, rule)).allowed, {
      intervalMs: 20,
      timeoutMs: 5_000,
      what: "a request back",
    });
    expect(Date.now() - deniedAt).toBeGreaterThanOrEqual(denied.retryAfterMs - 50);
  });

  it("still limits, per process, when Redis does not answer", async ({ stack, replicas: { connect, replica } }) => {
    const dead = new Redis(`redis://127.0.0.1:${await freePort()}`, {
      maxRetriesPerRequest: null,
      retryStrategy: () => 1_000,
    });
    dead.on("error", () => {});
    const app = replica(connect(dead));
    const org = await stack.orgWithAddress("Offline Redis Co");
    for (let i = 0; i < 3; i++) expect((await topup(app, org.orgKey)).json.error.code).toBe("transaction_not_found");
    expect((await topup(app, org.orgKey)).status).toBe(429);
  });
});
