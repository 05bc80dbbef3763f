import { randomBytes } from "node:crypto";
import type { Redis } from "ioredis";
import { afterAll, describe, expect } from "vitest";
import { createSql, type Sql } from "../../../src/db/client.js";
import { RateLimiter } from "../../../src/http/middleware/rate-limiter.js";
import { createTestApp, TEST_ADMIN_KEY, type TestApp } from "../../support/app.js";
import { dbTest } from "../../support/fixtures.js";
import { connectRedis, startDelayProxy, startOwnRedis } from "../../support/own-redis.js";
import { clearRedisPrefix, createTestRedis, uniqueRedisPrefix } from "../../support/redis.js";

/**
 * The app-wide limiter when Redis is slow, stalled or gone (each test with a redis-server of its
 * own), its leases for high limits, and what a client outside can do against it: floods of
 * made-up keys, floods of probes, rotating X-Forwarded-For, and whether Retry-After is honest.
 */
const cleanups: (() => Promise<unknown> | unknown)[] = [];
afterAll(async () => {
  for (const c of cleanups.reverse()) await c();
});

/** An app whose limiter counts on `redis`: PER_WINDOW requests per 60 s window per key and per address (twice that for gateway keys). */
function limitedApp(
  sql: Sql,
  redis: Redis,
  opts: { prefix?: string; timeoutMs?: number; config?: Record<string, string> } = {},
): TestApp {
  return createTestApp({
    sql,
    config: {
      RATE_LIMIT_WINDOW_SECONDS: "60",
      RATE_LIMIT_ORG_PER_SECOND: "1",
      RATE_LIMIT_ADMIN_PER_SECOND: "1",
      RATE_LIMIT_ANONYMOUS_PER_SECOND: "1",
      RATE_LIMIT_GATEWAY_PER_SECOND: "2",
      ...opts.config,
    },
    extra: {
      rateLimiter: new RateLimiter(redis, opts.prefix ?? uniqueRedisPrefix("rl"), {
        timeoutMs: opts.timeoutMs ?? 250,
      }),
    },
  });
}
/** 1 a second over a window of 60 s. */
const PER_WINDOW = 60;

async function orgKey(sql: Sql) {
  return (await createTestApp({ sql }).createOrg(`org-${randomBytes(3).toString("hex")}`)).orgKey;
}

/** `n` sequential GETs; each one's status and how long it took. */
async function flood(
  t: TestApp,
  n: number,
  path: string,
  init: { key?: string; headers?: Record<string, string> } = {},
) {
  const statuses: number[] = [];
  const ms: number[] = [];
  let limited: Awaited<ReturnType<TestApp["call"]>> | undefined;
  for (let i = 0; i < n; i++) {
    const started = performance.now();
    const res = await t.call("GET", path, init);
    ms.push(performance.now() - started);
    statuses.push(res.status);
    if (res.status === 429) limited ??= res;
  }
  return { statuses, ms, limited };
}

const ok = (n: number) => Array(n).fill(200);
const refused = (n: number) => Array(n).fill(429);

describe("rate limits when Redis is slow, stalled or down", () => {
  dbTest(
    "Redis slower than 250 ms: every request is answered without waiting on it, and still limited",
    async ({ db }) => {
      const own = await startOwnRedis();
      cleanups.push(own.stop);
      const proxy = await startDelayProxy(own.port, 0);
      cleanups.push(proxy.close);
      const redis = await connectRedis(proxy.url);
      cleanups.push(() => redis.disconnect());
      proxy.setDelay(3_000); // each way: a Redis answer now takes 6 s
      const t = limitedApp(db.appSql, redis);
      const key = await orgKey(db.sql);
      const { statuses, ms, limited } = await flood(t, PER_WINDOW + 2, "/v1/billing/balance", { key });
      expect(statuses).toEqual([...ok(PER_WINDOW), ...refused(2)]);
      expect(limited?.json.error.code).toBe("rate_limited");
      // At most the 250 ms timeout on top of the request itself, never Redis's 6 s; and only once
      // a second (Redis is asked again 1 s after it failed), not on every request (62 × 250 ms).
      expect(Math.max(...ms)).toBeLessThan(2_000);
      const seconds = ms.reduce((a, b) => a + b, 0) / 1000;
      expect(ms.filter((m) => m >= 250).length).toBeLessThanOrEqual(Math.ceil(seconds) + 1);
    },
  );

  dbTest("Redis slow but within 250 ms: replicas still share one count", async ({ db }) => {
    const own = await startOwnRedis();
    cleanups.push(own.stop);
    const proxy = await startDelayProxy(own.port, 20);
    cleanups.push(proxy.close);
    const prefix = uniqueRedisPrefix("rl-slow");
    // Timeouts of 2 s here, so a loaded test machine does not push a 40 ms Redis past them.
    const replicas = [];
    for (let i = 0; i < 2; i++) {
      const redis = await connectRedis(proxy.url);
      cleanups.push(() => redis.disconnect());
      replicas.push(limitedApp(db.appSql, redis, { prefix, timeoutMs: 2_000 }));
    }
    const key = await orgKey(db.sql);
    const statuses: number[] = [];
    for (let i = 0; i < PER_WINDOW + 2; i++)
      statuses.push((await replicas[i % 2]!.call("GET", "/v1/billing/balance", { key })).status);
    expect(statuses).toEqual([...ok(PER_WINDOW), ...refused(2)]);
  });

  dbTest(
    "Redis stalled (DEBUG SLEEP) and then killed: answered at once, limited per process throughout",
    async ({ db }) => {
      const own = await startOwnRedis();
      const redis = await connectRedis(own.url);
      cleanups.push(() => redis.disconnect());
      const control = await connectRedis(own.url);
      cleanups.push(() => control.disconnect());
      const t = limitedApp(db.appSql, redis);
      const key = await orgKey(db.sql);

      const before = await flood(t, 20, "/v1/billing/balance", { key }); // counted in Redis
      expect(before.statuses).toEqual(ok(20));
      const stall = control.call("DEBUG", "SLEEP", "4"); // the server answers nobody for 4 s
      const during = await flood(t, PER_WINDOW + 2, "/v1/billing/balance", { key });
      // In memory this process starts its own count: a replica allows up to its own limit.
      expect(during.statuses).toEqual([...ok(PER_WINDOW), ...refused(2)]);
      expect(Math.max(...during.ms)).toBeLessThan(2_000);
      await stall;

      await own.stop(); // and now gone altogether
      const down = await flood(t, 5, "/v1/billing/balance", { key });
      expect(down.statuses).toEqual(refused(5)); // the in-memory count carries on
      expect(Math.max(...down.ms)).toBeLessThan(2_000);
      const other = await orgKey(db.sql);
      const fresh = await flood(t, PER_WINDOW + 1, "/v1/billing/balance", { key: other });
      expect(fresh.statuses).toEqual([...ok(PER_WINDOW), 429]);
    },
  );

  dbTest(
    "Retry-After is honest: after waiting what it says, the next request goes through, from Redis and from memory",
    async ({ db }) => {
      const config = { RATE_LIMIT_WINDOW_SECONDS: "1", RATE_LIMIT_ANONYMOUS_PER_SECOND: "3" };
      const shared = createTestRedis();
      await shared.ping();
      const prefix = uniqueRedisPrefix("rl-retry");
      cleanups.push(async () => {
        await clearRedisPrefix(shared, `{${prefix}}`);
        shared.disconnect();
      });
      const own = await startOwnRedis();
      const gone = await connectRedis(own.url);
      cleanups.push(() => gone.disconnect());
      await own.stop();
      for (const t of [limitedApp(db.appSql, shared, { prefix, config }), limitedApp(db.appSql, gone, { config })]) {
        const first = await flood(t, 4, "/v1/pricing/plans");
        expect(first.statuses).toEqual([200, 200, 200, 429]);
        const retryAfter = Number(first.limited?.headers.get("retry-after"));
        expect(retryAfter).toBe(1);
        expect(first.limited?.json.error).toMatchObject({ type: "rate_limit_error", code: "rate_limited" });
        await new Promise((r) => setTimeout(r, retryAfter * 1000));
        expect((await t.call("GET", "/v1/pricing/plans")).status).toBe(200);
      }
    },
  );
});

describe("leases: high limits cost Redis one call per 1/1,000 of the limit", () => {
  dbTest(
    "three replicas on one key never allow more than the limit together, and lose at most a lease each",
    async () => {
      const redis = createTestRedis();
      await redis.ping();
      const prefix = uniqueRedisPrefix("rl-lease");
      cleanups.push(async () => {
        await clearRedisPrefix(redis, `{${prefix}}`);
        redis.disconnect();
      });
      const rule = { limit: 20_000, periodMs: 60_000 };
      const replicas = [0, 1, 2].map(() => new RateLimiter(redis, prefix, { timeoutMs: 5_000 }));
      const counted = async () => Number(await redis.get(`{${prefix}}:rl:20000/60s:key:k`));

      expect(await replicas[0]!.take("key:k", rule)).toEqual({ allowed: true });
      expect(await counted()).toBe(20); // one Redis call took a lease of 20
      for (let i = 0; i < 19; i++) await replicas[0]!.take("key:k", rule);
      expect(await counted()).toBe(20); // the next 19 came from memory

      let allowed = 20;
      for (let i = 0; i < 20_100; i++) {
        const r = replicas[i % 3]!;
        // Each replica asks concurrently too, as under load.
        const decisions = await Promise.all([r.take("key:k", rule), r.take("key:k", rule)]);
        allowed += decisions.filter((d) => d.allowed).length;
      }
      expect(allowed).toBeLessThanOrEqual(20_000);
      expect(allowed).toBeGreaterThanOrEqual(20_000 - 3 * 20);
      const refusal = await replicas[1]!.take("key:k", rule);
      expect(refusal.allowed).toBe(false);
    },
  );
});

describe("attacks on the limiter from outside", () => {
  dbTest(
    "a flood of made-up keys from one address stops reaching PostgreSQL at the address's limit",
    async ({ db }) => {
      let lookups = 0;
      const sql = createSql(db.appUrl, {
        max: 2,
        debug: (_connection, query) => {
          if (/from api_keys/.test(query)) lookups++;
        },
      });
      cleanups.push(() => sql.end({ timeout: 5 }));
      const redis = createTestRedis();
      await redis.ping();
      const prefix = uniqueRedisPrefix("rl-keys");
      cleanups.push(async () => {
        await clearRedisPrefix(redis, `{${prefix}}`);
        redis.disconnect();
      });
      const t = limitedApp(sql, redis, { prefix, timeoutMs: 5_000 });
      const statuses: number[] = [];
      for (let i = 0; i < 3 * PER_WINDOW; i++) {
        const made = `hk-${randomBytes(16).toString("hex")}`;
        statuses.push((await t.call("GET", "/v1/billing/balance", { key: made })).status);
      }
      expect(statuses).toEqual([...Array(PER_WINDOW).fill(401), ...refused(2 * PER_WINDOW)]);
      expect(lookups).toBe(PER_WINDOW);
      // The same for the admin key's place: made-up keys on an admin route.
      const admin = await t.call("GET", "/v1/admin/orgs/org_x", { key: `hk-${randomBytes(16).toString("hex")}` });
      expect(admin.status).toBe(429);
      expect(lookups).toBe(PER_WINDOW);
      // The admin key itself needs no lookup, so it still works from that address.
      expect((await t.call("POST", "/v1/admin/orgs", { key: TEST_ADMIN_KEY, body: { name: "Still" } })).status).toBe(
        201,
      );
    },
  );

  dbTest(
    "a flood of /healthz and /readyz (never limited) costs PostgreSQL at most one query a second",
    async ({ db }) => {
      let probes = 0;
      const sql = createSql(db.appUrl, {
        max: 2,
        debug: (_connection, query) => {
          if (query.trim() === "select 1") probes++;
        },
      });
      cleanups.push(() => sql.end({ timeout: 5 }));
      const t = createTestApp({ sql });
      const started = performance.now();
      const answers = await Promise.all(
        Array.from({ length: 400 }, (_, i) => t.call("GET", i % 2 ? "/healthz" : "/readyz")),
      );
      const seconds = (performance.now() - started) / 1000;
      expect(answers.map((a) => a.status)).toEqual(Array(400).fill(200));
      expect(answers[0]?.json).toMatchObject({ ok: true, postgres: "up" });
      expect(probes).toBeLessThanOrEqual(Math.ceil(seconds) + 1);
    },
  );

  dbTest(
    "chunked bodies over 4 MiB from one address are counted, and past its limit refused unread",
    async ({ db }) => {
      const redis = createTestRedis();
      await redis.ping();
      const prefix = uniqueRedisPrefix("rl-body");
      cleanups.push(async () => {
        await clearRedisPrefix(redis, `{${prefix}}`);
        redis.disconnect();
      });
      const t = limitedApp(db.appSql, redis, { prefix, timeoutMs: 5_000 });
      const chunk = new Uint8Array(256 * 1024);
      const results: { status: number; bytesRead: number }[] = [];
      for (let i = 0; i < PER_WINDOW + 2; i++) {
        let bytesRead = 0;
        // No Content-Length: the body limit has to read it to count it.
        const body = new ReadableStream<Uint8Array>(
          {
            pull(controller) {
              if (bytesRead >= 5 * 1024 * 1024) return controller.close();
              bytesRead += chunk.length;
              controller.enqueue(chunk);
            },
          },
          { highWaterMark: 0 }, // pulled only when someone reads it
        );
        const res = await t.app.request("/v1/billing/usage", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body,
          duplex: "half",
        } as RequestInit);
        results.push({ status: res.status, bytesRead });
      }
      expect(results.slice(0, PER_WINDOW).map((r) => r.status)).toEqual(Array(PER_WINDOW).fill(413));
      expect(results.slice(PER_WINDOW)).toEqual([
        { status: 429, bytesRead: 0 },
        { status: 429, bytesRead: 0 },
      ]);
    },
  );

  dbTest("X-Forwarded-For is ignored without TRUSTED_PROXY_HOPS: rotating it gets no fresh count", async ({ db }) => {
    const redis = createTestRedis();
    await redis.ping();
    const prefix = uniqueRedisPrefix("rl-xff");
    cleanups.push(async () => {
      await clearRedisPrefix(redis, `{${prefix}}`);
      redis.disconnect();
    });
    const t = limitedApp(db.appSql, redis, { prefix, timeoutMs: 5_000 });
    const statuses: number[] = [];
    for (let i = 0; i < PER_WINDOW + 2; i++) {
      const headers = { "x-forwarded-for": `198.51.100.${i % 250}`, "x-real-ip": `203.0.113.${i % 250}` };
      statuses.push((await t.call("GET", "/v1/pricing/models", { headers })).status);
    }
    expect(statuses).toEqual([...ok(PER_WINDOW), ...refused(2)]);
  });

  dbTest(
    "the card processor's deliveries have their own rule per address: anonymous traffic neither spends nor shares it",
    async ({ db }) => {
      const redis = createTestRedis();
      await redis.ping();
      const prefix = uniqueRedisPrefix("rl-processor");
      cleanups.push(async () => {
        await clearRedisPrefix(redis, `{${prefix}}`);
        redis.disconnect();
      });
      const t = limitedApp(db.appSql, redis, {
        prefix,
        timeoutMs: 5_000,
        config: { RATE_LIMIT_PROCESSOR_WEBHOOK_PER_SECOND: "2" },
      });
      // The address's anonymous count is used up...
      expect((await flood(t, PER_WINDOW + 1, "/v1/pricing/models")).statuses).toEqual([...ok(PER_WINDOW), 429]);
      // ...and deliveries from it still reach the webhook (unsigned here: 400, not 429), up to their own limit.
      const deliveries: number[] = [];
      for (let i = 0; i < 2 * PER_WINDOW + 1; i++) {
        const res = await t.app.request("/v1/webhooks/processor", {
          method: "POST",
          headers: { "content-type": "application/json" },
          body: "{}",
        });
        deliveries.push(res.status);
      }
      expect(deliveries).toEqual([...Array(2 * PER_WINDOW).fill(400), 429]);
    },
  );
});
