import { Redis } from "ioredis";
import { RateLimiter } from "../src/http/middleware/rate-limiter.js";
import { cpuMicros, startRedis, stopProcess } from "./support.js";

/**
 * node --import tsx bench/rate-limiter.ts — what the app-wide limiter costs per request, in CPU
 * (this process, as the API would spend it, and a redis-server of the bench's own), for a rule
 * as high as the gateway's (leases of 1/1,000 of it) and for one counted in Redis per request.
 * CPU time, not wall time, so the figures hold on a machine busy with other work.
 */
const TAKES = Number(process.env.BENCH_TAKES ?? 50_000);
const CONCURRENCY = 32;
const redisServer = await startRedis();
if (!redisServer) throw new Error("needs redis-server on the PATH");
const redis = new Redis(redisServer.url, { maxRetriesPerRequest: null });
await redis.ping();

async function measure(name: string, limit: number) {
  const limiter = new RateLimiter(redis, `bench-${name}`, { timeoutMs: 5_000 });
  const rule = { limit, periodMs: 600_000 };
  await limiter.take("key:warm", rule);
  const redisBefore = cpuMicros(redisServer!.pid);
  const before = process.cpuUsage();
  const started = performance.now();
  let allowed = 0;
  let next = 0;
  await Promise.all(
    Array.from({ length: CONCURRENCY }, async () => {
      // Ten keys, so 50,000 takes stay under even the per-request rule's limit.
      while (next < TAKES) if ((await limiter.take(`key:${next++ % 10}`, rule)).allowed) allowed++;
    }),
  );
  const wallMs = performance.now() - started;
  const cpu = process.cpuUsage(before);
  const redisUs = cpuMicros(redisServer!.pid) - redisBefore;
  return {
    rule: name,
    takes: TAKES,
    allowed,
    node_cpu_us_per_take: Number(((cpu.user + cpu.system) / TAKES).toFixed(2)),
    redis_cpu_us_per_take: Number((redisUs / TAKES).toFixed(2)),
    wall_us_per_take: Number(((wallMs * 1000) / TAKES).toFixed(2)),
  };
}

// 200,000 a window: the gateway's default (20,000 a second over 10 s), leased 200 at a time.
const leased = await measure("leased", 200_000);
// 9,999 a window: below the lease threshold, one Redis call per request (as every rule was
// before leases); never reached here, so every take is a Redis call.
const perRequest = await measure("per-request", 9_999);
redis.disconnect();
await stopProcess(redisServer.child);
console.log(JSON.stringify({ leased, per_request: perRequest }));
