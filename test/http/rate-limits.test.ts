import { Redis } from "ioredis";
import { describe, expect } from "vitest";
import { RateLimiter } from "../../src/http/middleware/rate-limiter.js";
import { createTestApp, TEST_ADMIN_KEY, type TestApp } from "../support/app.js";
import { appTest } from "../support/fixtures.js";
import { freePort } from "../support/free-port.js";
import { clearRedisPrefix, createTestRedis, uniqueRedisPrefix } from "../support/redis.js";

/**
 * App-wide limits per key (gateway high, org and admin moderate) and per client address for
 * requests without a valid key, on the real Redis; 429 `rate_limited` in the envelope with
 * Retry-After. Each test uses its own Redis prefix, so windows never carry over between tests.
 * A window (60 s) starts at its bucket's first request, far longer than any test takes.
 */
const W = 60;
type Limits = {
  /** W requests per W-second window for org and admin keys and per address, 2W for gateway keys, on a prefix of its own. */
  app(opts?: { config?: Record<string, string>; redis?: Redis }): TestApp;
  /** A Redis prefix of the file's, deleted after it. */
  prefix(label: string): string;
  /** A Redis connection of its own, closed after the file. */
  connection(redis?: Redis): Redis;
};

/**
 * `limits`: apps with the limiter on the real Redis (`redis`, ready: until it is, the limiter
 * counts in memory as when Redis is down). `app` stays unlimited: keys and orgs are made through
 * it, so making them counts against nothing.
 */
const it = appTest.extend<{ limits: Limits }>({
  limits: [
    async ({ db, redis }, use) => {
      await redis.connection.ping();
      const prefixes: string[] = [];
      const connections: Redis[] = [];
      const limits: Limits = {
        prefix(label) {
          const prefix = uniqueRedisPrefix(label);
          prefixes.push(prefix);
          return prefix;
        },
        connection(connection = createTestRedis()) {
          connections.push(connection);
          return connection;
        },
        app(opts = {}) {
          return createTestApp({
            sql: db.appSql,
            config: {
              RATE_LIMIT_WINDOW_SECONDS: String(W),
              RATE_LIMIT_ORG_PER_SECOND: "1",
              RATE_LIMIT_ADMIN_PER_SECOND: "1",
              RATE_LIMIT_ANONYMOUS_PER_SECOND: "1",
              RATE_LIMIT_GATEWAY_PER_SECOND: "2",
              ...opts.config,
            },
            // A loaded test machine must not push Redis past the timeout: that is tested on its own.
            extra: {
              rateLimiter: new RateLimiter(opts.redis ?? redis.connection, limits.prefix("rate"), { timeoutMs: 5_000 }),
            },
          });
        },
      };
      try {
        await use(limits);
      } finally {
        for (const p of prefixes) await clearRedisPrefix(redis.connection, `{${p}}`);
        for (const c of connections) c.disconnect();
      }
    },
    { scope: "file" },
  ],
});

describe("rate limits per key and per address", () => {
  const newKey = async (app: TestApp, orgId: string, scope: "org" | "gateway") =>
    (await app.call("POST", `/v1/admin/orgs/${orgId}/keys`, { key: TEST_ADMIN_KEY, body: { scope } })).json
      .key as string;

  async function flood(
    t: TestApp,
    n: number,
    path: string,
    key?: string,
    init: { headers?: Record<string, string> } = {},
  ) {
    const statuses: number[] = [];
    let limited: Awaited<ReturnType<TestApp["call"]>> | undefined;
    for (let i = 0; i < n; i++) {
      const res = await t.call("GET", path, { ...init, ...(key ? { key } : {}) });
      statuses.push(res.status);
      if (res.status === 429) limited ??= res;
    }
    return { statuses, limited };
  }
  function expectLimited(res: Awaited<ReturnType<TestApp["call"]>> | undefined) {
    expect(res?.status).toBe(429);
    expect(res?.json.error).toMatchObject({
      type: "rate_limit_error",
      code: "rate_limited",
      message: expect.any(String),
      request_id: expect.stringMatching(/^req_/),
    });
    const retryAfter = Number(res?.headers.get("retry-after"));
    expect(Number.isInteger(retryAfter)).toBe(true);
    expect(retryAfter).toBeGreaterThanOrEqual(1);
    expect(retryAfter).toBeLessThanOrEqual(W);
  }

  it("flooding one org key gets it 429s; another key of the same org, and a gateway key, are unaffected", async ({
    app,
    limits,
  }) => {
    const t = limits.app();
    const org = await app.createOrg("Flooder");
    const other = await newKey(app, org.id, "org");
    const { statuses, limited } = await flood(t, W + 5, "/v1/billing/balance", org.orgKey);
    expect(statuses.slice(0, W)).toEqual(Array(W).fill(200));
    expect(statuses.slice(W)).toEqual(Array(5).fill(429));
    expectLimited(limited);
    expect((await t.call("GET", "/v1/billing/balance", { key: other })).status).toBe(200);
    // Gateway keys are allowed more: 2W in the window where an org key had W.
    const gateway = await flood(t, 2 * W + 1, "/v1/pricing/models", org.gatewayKey);
    expect(gateway.statuses.filter((s) => s === 200)).toHaveLength(2 * W);
    expect(gateway.statuses.at(-1)).toBe(429);
  });

  it("requests without a key, and with a wrong key, share their address's low limit; valid keys there do not", async ({
    app,
    limits,
  }) => {
    const t = limits.app();
    const org = await app.createOrg("Neighbour");
    const anonymous = await flood(t, W - 2, "/v1/pricing/models");
    expect(anonymous.statuses).toEqual(Array(W - 2).fill(200));
    const wrong = await flood(t, 4, "/v1/billing/balance", "hk-not-a-key-0123456789abcdef");
    expect(wrong.statuses).toEqual([401, 401, 429, 429]); // W - 2 + 2 used the window
    expectLimited(wrong.limited);
    expect((await t.call("GET", "/v1/pricing/models")).status).toBe(429);
    expect((await t.call("GET", "/v1/billing/balance", { key: org.orgKey })).status).toBe(200);
    // Probes are never limited.
    expect((await t.call("GET", "/healthz")).status).toBe(200);
  });

  it("behind TRUSTED_PROXY_HOPS proxies, each client address has its own count", async ({ limits }) => {
    const t = limits.app({ config: { TRUSTED_PROXY_HOPS: "1" } });
    const from = (address: string) => ({ headers: { "x-forwarded-for": `203.0.113.9, ${address}` } });
    const first = await flood(t, W, "/v1/pricing/plans", undefined, from("198.51.100.1"));
    expect(first.statuses).toEqual(Array(W).fill(200));
    expect((await t.call("GET", "/v1/pricing/plans", from("198.51.100.1"))).status).toBe(429);
    // What the client itself put in front of the proxy's entry does not matter.
    expect((await t.call("GET", "/v1/pricing/plans", from("198.51.100.2"))).status).toBe(200);
  });

  it("IPv6 clients are counted by their /64, and an IPv4-mapped address as the IPv4 one", async ({ limits }) => {
    const t = limits.app({ config: { TRUSTED_PROXY_HOPS: "1" } });
    const from = (address: string) => ({ headers: { "x-forwarded-for": address } });
    // A fresh address from the same /64 for every request: one count.
    const rotating = [];
    for (let i = 0; i < W + 1; i++)
      rotating.push(
        (await t.call("GET", "/v1/pricing/plans", from(`2001:db8:7:8:${i.toString(16)}::${i + 1}`))).status,
      );
    expect(rotating).toEqual([...Array(W).fill(200), 429]);
    expect((await t.call("GET", "/v1/pricing/plans", from("2001:db8:7:9::1"))).status).toBe(200); // another /64
    await flood(t, W, "/v1/pricing/plans", undefined, from("192.0.2.7"));
    expect((await t.call("GET", "/v1/pricing/plans", from("::ffff:192.0.2.7"))).status).toBe(429);
  });

  it("the count is shared by replicas: two apps on one Redis prefix allow W together", async ({ db, app, limits }) => {
    const prefix = limits.prefix("rate-shared");
    const replica = async () => {
      const connection = limits.connection();
      await connection.ping();
      return createTestApp({
        sql: db.appSql,
        config: { RATE_LIMIT_WINDOW_SECONDS: String(W), RATE_LIMIT_ORG_PER_SECOND: "1" },
        extra: { rateLimiter: new RateLimiter(connection, prefix) },
      });
    };
    const [a, b] = [await replica(), await replica()];
    const org = await app.createOrg("Two replicas");
    const statuses: number[] = [];
    for (let i = 0; i < W + 2; i++)
      statuses.push((await [a, b][i % 2]!.call("GET", "/v1/billing/balance", { key: org.orgKey })).status);
    expect(statuses).toEqual([...Array(W).fill(200), 429, 429]);
  });

  it("with Redis down, each process still limits on its own, and answers at once", async ({ app, limits }) => {
    const down = new Redis(`redis://127.0.0.1:${await freePort()}`, {
      maxRetriesPerRequest: null,
      retryStrategy: () => 1_000,
    });
    down.on("error", () => {});
    limits.connection(down);
    const t = limits.app({ redis: down });
    const org = await app.createOrg("Redis down");
    const started = performance.now();
    const { statuses, limited } = await flood(t, W + 2, "/v1/billing/balance", org.orgKey);
    expect(performance.now() - started).toBeLessThan(10_000);
    expect(statuses).toEqual([...Array(W).fill(200), 429, 429]);
    expectLimited(limited);
  });
});
