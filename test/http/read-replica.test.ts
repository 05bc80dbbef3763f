import type { Redis } from "ioredis";
import { pino } from "pino";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSql, type Sql } from "../../src/db/client.js";
import { ReadRouting } from "../../src/db/read-routing.js";
import { WritePositions } from "../../src/db/write-positions.js";
import { createMetrics, type Metrics } from "../../src/observability/metrics.js";
import { createTestApp, TEST_ADMIN_KEY, type TestApp } from "../support/app.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { clearRedisPrefix, createTestRedis, uniqueRedisPrefix } from "../support/redis.js";
import { startStreamingReplica, type StreamingReplica } from "../support/replica.js";

/**
 * DATABASE_READ_URL against a real streaming replica of the test server (pg_basebackup, a second
 * cluster on a free loopback port): the read-mostly endpoints are served there once it has the
 * org's writes, a paused replay never shows the org a balance or a list older than its own write,
 * and a replica that goes away costs reads nothing but a warning metric.
 */
describe("read replica", { timeout: 120_000 }, () => {
  const APP_NAME = "hanzo-test-replica-reads";
  let db: TestDatabase;
  let replica: StreamingReplica;
  let replicaSql: Sql;
  /** The replica as the owner: what it holds, and who is connected to it. */
  let replicaOwner: postgres.Sql;
  let redis: Redis;
  let prefix: string;
  let metrics: Metrics;
  let t: TestApp;

  beforeAll(async () => {
    // The test database first: the replica copies the whole server, this database included.
    db = await createTestDatabase();
    replica = await startStreamingReplica();
    replicaSql = createSql(replica.urlFor(db.appUrl), { max: 3, applicationName: APP_NAME, connectTimeoutSeconds: 2 });
    replicaOwner = postgres(replica.urlFor(db.url), { max: 1, onnotice: () => {} });
    redis = createTestRedis();
    prefix = uniqueRedisPrefix("reads");
    metrics = createMetrics({ sql: db.appSql });
    const reads = new ReadRouting({
      primary: db.appSql,
      replica: replicaSql,
      positions: new WritePositions(redis, prefix),
      logger: pino({ level: "silent" }),
      observer: metrics.readRoutingObserver(),
      retryAfterMs: 200,
    });
    t = createTestApp({ sql: db.appSql, extra: { metrics, reads } });
  }, 180_000);

  afterAll(async () => {
    await replicaSql?.end({ timeout: 1 }).catch(() => {});
    await replicaOwner?.end({ timeout: 1 }).catch(() => {});
    await replica?.destroy();
    if (redis) {
      await clearRedisPrefix(redis, prefix);
      redis.disconnect();
    }
    await db?.drop();
  }, 120_000);

  async function metric(name: string, labels: Record<string, string> = {}): Promise<number> {
    const m = metrics.registry.getSingleMetric(name);
    if (!m) return 0;
    const values = (await m.get()).values.filter((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x));
    return values.reduce((sum, v) => sum + v.value, 0);
  }
  const reads = (target: string, reason: string) => metric("hanzo_db_reads_total", { target, reason });

  /** Waits until the replica has replayed everything the primary has written so far. */
  async function replicaCaughtUp() {
    const [row] = await db.sql<{ lsn: string }[]>`select pg_current_wal_insert_lsn()::text as lsn`;
    await replica.waitForReplay(row?.lsn ?? "0/0");
  }

  const get = (key: string, path: string) => t.call("GET", path, { key });
  const READ_MOSTLY = [
    "/v1/billing/transactions",
    "/v1/billing/usage",
    "/v1/billing/invoices",
    "/v1/billing/events",
    "/v1/billing/topups",
  ];

  it("serves the read-mostly endpoints from the replica once it has replayed the org's writes", async () => {
    const org = await t.createOrg("Replica Reader");
    await t.grant(org.id, "10.00");
    await replicaCaughtUp();

    const before = await reads("replica", "caught_up");
    for (const path of READ_MOSTLY) {
      const res = await get(org.orgKey, path);
      expect(res.status, `${path}: ${res.text}`).toBe(200);
    }
    expect(await reads("replica", "caught_up")).toBe(before + READ_MOSTLY.length);
    expect((await get(org.orgKey, "/v1/billing/transactions")).json.data).toHaveLength(1);

    // The app's replica pool is connected to this database on the replica, which is in recovery.
    const [seen] = await replicaOwner<{ n: number; recovery: boolean }[]>`
      select count(*)::int as n, pg_is_in_recovery() as recovery from pg_stat_activity
      where application_name = ${APP_NAME} and datname = ${db.name}`;
    expect(seen?.recovery).toBe(true);
    expect(seen?.n).toBeGreaterThan(0);

    // The balance is never read from the replica.
    const replicaBefore = await reads("replica", "caught_up");
    expect((await get(org.orgKey, "/v1/billing/balance")).status).toBe(200);
    expect(await reads("replica", "caught_up")).toBe(replicaBefore);
  });

  it("with replay paused, the org still sees its own write in its balance and lists; other orgs read the replica", async () => {
    const writer = await t.createOrg("Writer");
    const bystander = await t.createOrg("Bystander");
    await t.grant(writer.id, "10.00");
    await t.grant(bystander.id, "1.00");
    await replicaCaughtUp();

    await replica.pauseReplay();
    try {
      await t.grant(writer.id, "5.00", "second-grant");
      // An org key's own write counts too: a new key of the writer's.
      const key = await t.call("POST", "/v1/billing/keys", {
        key: writer.orgKey,
        headers: { "idempotency-key": "replica-key-1" },
        body: { name: "made during the pause" },
      });
      expect(key.status, key.text).toBe(201);

      // The replica really is behind: it has one grant of the writer's, the primary two.
      const [onReplica] = await replicaOwner<{ n: number }[]>`
        select count(*)::int as n from billing.ledger_transactions where kind = 'grant' and org_id = ${writer.id}`;
      const [onPrimary] = await db.sql<{ n: number }[]>`
        select count(*)::int as n from ledger_transactions where kind = 'grant' and org_id = ${writer.id}`;
      expect(onReplica?.n).toBe(1);
      expect(onPrimary?.n).toBe(2);

      const behind = await reads("primary", "behind");
      const balance = await get(writer.orgKey, "/v1/billing/balance");
      expect(balance.status).toBe(200);
      expect(balance.json.balance_nano_usd).toBe("15000000000");

      const txs = await get(writer.orgKey, "/v1/billing/transactions");
      expect(txs.status).toBe(200);
      expect(txs.json.data.map((x: { kind: string }) => x.kind)).toEqual(["grant", "grant"]);
      const events = await get(writer.orgKey, "/v1/billing/events");
      expect(events.status).toBe(200);
      const [primaryEvents] = await db.sql<{ n: number }[]>`
        select count(*)::int as n from billing_events where org_id = ${writer.id}`;
      expect(events.json.data).toHaveLength(primaryEvents?.n ?? -1);
      for (const path of ["/v1/billing/usage", "/v1/billing/invoices", "/v1/billing/topups"])
        expect((await get(writer.orgKey, path)).status).toBe(200);
      expect(await reads("primary", "behind")).toBe(behind + 5);

      // An org that wrote nothing since the pause still reads from the (paused) replica.
      const replicaReads = await reads("replica", "caught_up");
      const other = await get(bystander.orgKey, "/v1/billing/transactions");
      expect(other.status).toBe(200);
      expect(other.json.data).toHaveLength(1);
      expect(await reads("replica", "caught_up")).toBe(replicaReads + 1);
    } finally {
      await replica.resumeReplay();
    }

    await replicaCaughtUp();
    const replicaReads = await reads("replica", "caught_up");
    const txs = await get(writer.orgKey, "/v1/billing/transactions");
    expect(txs.json.data).toHaveLength(2);
    expect(await reads("replica", "caught_up")).toBe(replicaReads + 1);
  });

  it("an operator's write that names no org (a new org) holds every org's reads until the replica has it", async () => {
    const org = await t.createOrg("Early");
    await replicaCaughtUp();
    await replica.pauseReplay();
    try {
      const created = await t.call("POST", "/v1/admin/orgs", { key: TEST_ADMIN_KEY, body: { name: "During pause" } });
      expect(created.status).toBe(201);
      const behind = await reads("primary", "behind");
      expect((await get(org.orgKey, "/v1/billing/transactions")).status).toBe(200);
      expect(await reads("primary", "behind")).toBe(behind + 1);
    } finally {
      await replica.resumeReplay();
    }
  });

  it("a replica that goes away: reads are served by the primary with a warning metric, and return to it when it is back", async () => {
    const org = await t.createOrg("Outage");
    await t.grant(org.id, "3.00");
    await replicaCaughtUp();

    await replica.stop();
    const fallbacks = await metric("hanzo_db_replica_fallbacks_total", { reason: "unreachable" });
    for (const path of READ_MOSTLY) {
      const res = await get(org.orgKey, path);
      expect(res.status, `${path}: ${res.text}`).toBe(200);
    }
    const txs = await get(org.orgKey, "/v1/billing/transactions");
    expect(txs.json.data).toHaveLength(1);
    expect(await metric("hanzo_db_replica_fallbacks_total", { reason: "unreachable" })).toBeGreaterThan(fallbacks);
    expect(await metric("hanzo_db_replica_up")).toBe(0);
    const metricsText = (await t.call("GET", "/metrics")).text;
    expect(metricsText).toMatch(/hanzo_db_replica_up 0/);

    await replica.start();
    await replicaCaughtUp();
    // Asked again once the retry time has passed: poll until a read is served there.
    const replicaReads = await reads("replica", "caught_up");
    const until = Date.now() + 30_000;
    while ((await reads("replica", "caught_up")) === replicaReads) {
      if (Date.now() > until) throw new Error("reads never returned to the replica");
      expect((await get(org.orgKey, "/v1/billing/transactions")).status).toBe(200);
      await new Promise((r) => setTimeout(r, 50));
    }
    expect(await metric("hanzo_db_replica_up")).toBe(1);
  });
});

describe("write positions", () => {
  it("only rise, and an org's reads wait for the later of its own and the every-org position", async () => {
    const redis = createTestRedis();
    const prefix = uniqueRedisPrefix("positions");
    try {
      await redis.ping();
      const positions = new WritePositions(redis, prefix);
      expect(await positions.required("org_a")).toBe(0n);
      await positions.raise("org_a", 0x1_0000_0010n);
      await positions.raise("org_a", 0x10n); // an earlier position recorded late
      expect(await positions.required("org_a")).toBe(0x1_0000_0010n);
      expect(await positions.required("org_b")).toBe(0n);
      await positions.raise(null, 0x2_0000_0000n);
      expect(await positions.required("org_a")).toBe(0x2_0000_0000n);
      expect(await positions.required("org_b")).toBe(0x2_0000_0000n);
    } finally {
      await clearRedisPrefix(redis, prefix);
      redis.disconnect();
    }
  });
});
