import { Worker } from "bullmq";
import { pino } from "pino";
import { describe, expect } from "vitest";
import { expireGrants } from "../../src/billing/grants.js";
import { deliverLowBalanceAlert } from "../../src/billing/alerts.js";
import { enqueueAlerts } from "../../src/jobs/enqueue.js";
import { createQueues, QueueNames, type Queues } from "../../src/jobs/queues.js";
import { startWorkers } from "../../src/workers/start-workers.js";
import { createTestApp, manualClock, TEST_ADMIN_KEY, type TestApp } from "../support/app.js";
import type { TestDatabase } from "../support/database.js";
import { type TestRedis, withDatabase } from "../support/fixtures.js";
import { contextAt, testContext } from "../support/context.js";
import { waitFor } from "../support/process.js";
import { clearRedisPrefix } from "../support/redis.js";

const clock = manualClock(new Date());

/** The file's queues on its Redis prefix, and the app enqueuing each low-balance crossing on them. */
const it = withDatabase().extend<{ queues: Queues; app: TestApp }>({
  queues: [
    async ({ redis }, use) => {
      const queues = createQueues(redis.connection, redis.prefix);
      try {
        await use(queues);
      } finally {
        await queues.close();
      }
    },
    { scope: "file" },
  ],
  app: [
    async ({ db, queues }, use) =>
      use(
        createTestApp({
          sql: db.sql,
          clock,
          onCrossings: (c) =>
            enqueueAlerts(
              queues,
              c.map((x) => x.alertId),
            ),
        }),
      ),
    { scope: "file" },
  ],
});

describe("low-balance alerts", () => {
  it.scoped({ redisLabel: "alerts" });
  let n = 0;
  const spend = (app: TestApp, org: { id: string; gatewayKey: string }, requests: number) =>
    app.call("POST", "/v1/billing/usage", {
      key: org.gatewayKey,
      body: {
        events: [
          {
            idempotency_key: `spend-${++n}`,
            org_id: org.id,
            timestamp: clock().toISOString(),
            product: "api",
            quantities: { requests },
          },
        ],
      },
    });

  it("enqueues one alert per downward crossing, not one per request", async ({ app, db, queues }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "10.50"); // threshold is 10.00; api requests cost $0.0001
    await spend(app, org, 2000); // 10.50 → 10.30
    await spend(app, org, 3000); // → 10.00 (not below)
    await Promise.all(Array.from({ length: 10 }, () => spend(app, org, 100))); // → 9.90: one crossing, whatever the interleaving
    await spend(app, org, 100);
    let alerts = await db.sql`select id, balance from balance_alerts where org_id = ${org.id}`;
    expect(alerts).toHaveLength(1);
    expect(alerts[0]!.balance).toBeLessThan(10_000_000_000n);
    await app.grant(org.id, "5"); // back above
    await spend(app, org, 60000); // crosses again
    alerts = await db.sql`select id from balance_alerts where org_id = ${org.id} order by created_at`;
    expect(alerts).toHaveLength(2);
    await waitFor(
      async () => (await queues.lowBalanceAlerts.getJobCountByTypes("waiting", "delayed", "active", "completed")) >= 2,
    );
    const jobs = await queues.lowBalanceAlerts.getJobs(["waiting", "delayed", "active", "completed"]);
    expect(jobs.map((j) => j.id).sort()).toEqual(alerts.map((a) => a.id).sort());
  });

  it("a worker delivers each alert once, and alerts whose jobs were lost from Redis are found again from PostgreSQL", async ({
    app,
    db,
    redis,
  }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "10.01");
    await spend(app, org, 200);
    const [alert] = await db.sql`select id from balance_alerts where org_id = ${org.id}`;
    // Redis loses everything before any worker ran.
    await clearRedisPrefix(redis.connection, `{${redis.prefix}}`);
    await db.sql`update balance_alerts set created_at = created_at - interval '1 minute' where delivered_at is null`;
    const workers = await startWorkers({
      sql: db.appSql,
      connection: redis.connection,
      prefix: redis.prefix,
      logger: pino({ level: "silent" }),
      clock: () => new Date(),
      config: app.config,
      maintenanceEveryMs: 200,
    });
    try {
      await waitFor(
        async () =>
          (await db.sql`select delivered_at from balance_alerts where id = ${alert!.id}`)[0]!.delivered_at !== null,
        { timeoutMs: 15_000, what: "alert delivered" },
      );
    } finally {
      await workers.close();
    }
    const ctx = testContext(db.sql);
    expect(await deliverLowBalanceAlert(ctx, { alertId: alert!.id })).toBe("already_delivered");
    expect(await deliverLowBalanceAlert(ctx, { alertId: "alert_unknown" })).toBe("unknown");
  });

  /** Workers whose clock runs 20 times faster than real time from the test's: the sweep's 5 s of grace pass in a quarter of a second. */
  const startFastWorkers = ({ db, redis, app }: { db: TestDatabase; redis: TestRedis; app: TestApp }) => {
    const [from, realFrom] = [clock().getTime(), Date.now()];
    const fast = () => new Date(from + (Date.now() - realFrom) * 20);
    return startWorkers({
      sql: db.appSql,
      connection: redis.connection,
      prefix: redis.prefix,
      logger: pino({ level: "silent" }),
      clock: fast,
      config: app.config,
      maintenanceEveryMs: 200,
    });
  };

  const alertsOf = (db: TestDatabase, orgId: string) =>
    db.sql<{ kind: string; balance: bigint }[]>`
      select t.kind, a.balance from balance_alerts a join ledger_transactions t on t.id = a.transaction_id
      where a.org_id = ${orgId} order by a.created_at, a.id`;

  it("a grant's expiry that takes the balance below the threshold raises one alert, when the expiry is posted", async ({
    app,
    db,
  }) => {
    const org = await app.createOrg();
    const expiresAt = new Date(clock().getTime() + 60_000);
    await app.grant(org.id, "6", `forever-${org.id}`);
    await app.grant(org.id, "3", `soon-a-${org.id}`, { expires_at: expiresAt.toISOString() }); // 9 + 3 + 3 = 15 → 9 at expiry
    await app.grant(org.id, "3", `soon-b-${org.id}`, { expires_at: expiresAt.toISOString() });
    clock.set(new Date(expiresAt.getTime() + 1000));
    await spend(app, org, 10); // the balance the org sees is already 8.999: usage does not claim the expiry's crossing
    expect(await alertsOf(db, org.id)).toEqual([]);
    expect(await expireGrants(contextAt(db.sql, clock()))).toBeGreaterThanOrEqual(2); // one transaction per grant: still one alert
    expect(await alertsOf(db, org.id)).toEqual([{ kind: "grant_expiry", balance: 8_999_000_000n }]);
  });

  it("usage between a grant's expiry and its posting: still exactly one alert per drop below the threshold", async ({
    app,
    db,
  }) => {
    const expiresAt = new Date(clock().getTime() + 60_000);
    // Expiry does not cross (20 → 12 as the org is shown), the usage after it does (→ 9): one alert, at the posting.
    const a = await app.createOrg();
    await app.grant(a.id, "12", `forever-a-${a.id}`);
    await app.grant(a.id, "8", `soon-a-${a.id}`, { expires_at: expiresAt.toISOString() });
    // Expiry crosses (15 → 9 as the org is shown), the usage after it goes further (→ 3): one alert, with the usage.
    const b = await app.createOrg();
    await app.grant(b.id, "9", `forever-b-${b.id}`);
    await app.grant(b.id, "6", `soon-b-${b.id}`, { expires_at: expiresAt.toISOString() });
    clock.set(new Date(expiresAt.getTime() + 1000));
    await spend(app, a, 30_000); // $3
    await spend(app, b, 60_000); // $6
    expect(await expireGrants(contextAt(db.sql, clock()))).toBeGreaterThanOrEqual(2);
    expect(await alertsOf(db, a.id)).toEqual([{ kind: "grant_expiry", balance: 9_000_000_000n }]);
    expect(await alertsOf(db, b.id)).toEqual([{ kind: "usage", balance: 9_000_000_000n }]);
  });

  it("charges settled from credits at cycle close raise one alert when they cross the threshold", async ({
    app,
    db,
  }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "15");
    const charge = {
      key: TEST_ADMIN_KEY,
      headers: { "idempotency-key": `charge-${org.id}` },
      body: { amount: "8.00", description: "Support plan" },
    };
    expect((await app.call("POST", `/v1/admin/orgs/${org.id}/adjustments`, charge)).status).toBe(201);
    clock.set(new Date(clock().getTime() + 40 * 24 * 3600 * 1000));
    expect(
      (await app.call("POST", "/v1/admin/cycles/close", { key: TEST_ADMIN_KEY, body: { org_id: org.id } })).json
        .invoices_created,
    ).toBeGreaterThanOrEqual(1);
    expect(await alertsOf(db, org.id)).toEqual([{ kind: "invoice_settlement", balance: 7_000_000_000n }]);
  });

  it("the worker posts a grant's expiry, and its alert reaches the queue and is delivered with nothing else enqueuing it", async ({
    app,
    db,
    redis,
  }) => {
    const org = await app.createOrg();
    const expiresAt = new Date(clock().getTime() + 60_000);
    await app.grant(org.id, "9", `forever-w-${org.id}`);
    await app.grant(org.id, "2", `soon-w-${org.id}`, { expires_at: expiresAt.toISOString() });
    clock.set(new Date(expiresAt.getTime() + 1000));
    const workers = await startFastWorkers({ db, redis, app });
    try {
      await waitFor(
        async () =>
          (await db.sql`select 1 from balance_alerts where org_id = ${org.id} and delivered_at is not null`).length ===
          1,
        {
          timeoutMs: 15_000,
          what: "expiry alert delivered",
        },
      );
    } finally {
      await workers.close();
    }
    expect(await alertsOf(db, org.id)).toEqual([{ kind: "grant_expiry", balance: 9_000_000_000n }]);
  });

  it("an alert whose job used up its attempts is retried by the sweep, not left in the failed set", async ({
    app,
    db,
    queues,
    redis,
  }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "10.01");
    await spend(app, org, 200); // crosses: the alert's job is enqueued right after the commit
    const [alert] = await db.sql<{ id: string }[]>`select id from balance_alerts where org_id = ${org.id}`;
    // Its job fails for good (say the alert pipeline was down): one attempt, a processor that throws.
    const job = await queues.lowBalanceAlerts.getJob(alert!.id);
    await job!.remove();
    await queues.lowBalanceAlerts.add("deliver", { alert_id: alert!.id }, { jobId: alert!.id, attempts: 1 });
    const broken = new Worker(
      QueueNames.lowBalanceAlerts,
      async () => {
        throw new Error("alert pipeline down");
      },
      { connection: redis.connection, prefix: `{${redis.prefix}}` },
    );
    await waitFor(async () => await (await queues.lowBalanceAlerts.getJob(alert!.id))!.isFailed(), {
      what: "job failed",
    });
    await broken.close();

    const workers = await startFastWorkers({ db, redis, app });
    try {
      await waitFor(
        async () =>
          (await db.sql`select delivered_at from balance_alerts where id = ${alert!.id}`)[0]!.delivered_at !== null,
        {
          timeoutMs: 15_000,
          what: "failed alert delivered on retry",
        },
      );
    } finally {
      await workers.close();
    }
  });

  it("an alert from any path is enqueued as its transaction commits, before any sweep could find it", async ({
    app,
    db,
    redis,
  }) => {
    // The workers' clock stands still: the sweep's 5 s of grace never pass, so only the
    // notification sent at commit (migration 0013) can get this alert delivered.
    const workers = await startWorkers({
      sql: db.appSql,
      connection: redis.connection,
      prefix: redis.prefix,
      logger: pino({ level: "silent" }),
      clock: () => clock(),
      config: app.config,
      maintenanceEveryMs: 60_000,
    });
    try {
      const org = await app.createOrg();
      await app.grant(org.id, "15");
      const charge = {
        key: TEST_ADMIN_KEY,
        headers: { "idempotency-key": `notify-${org.id}` },
        body: { amount: "8.00", description: "Support plan" },
      };
      expect((await app.call("POST", `/v1/admin/orgs/${org.id}/adjustments`, charge)).status).toBe(201);
      clock.set(new Date(clock().getTime() + 40 * 24 * 3600 * 1000));
      await app.call("POST", "/v1/admin/cycles/close", { key: TEST_ADMIN_KEY, body: { org_id: org.id } });
      await waitFor(
        async () =>
          (await db.sql`select 1 from balance_alerts where org_id = ${org.id} and delivered_at is not null`).length ===
          1,
        {
          timeoutMs: 10_000,
          what: "alert delivered on commit",
        },
      );
    } finally {
      await workers.close();
    }
  });
});
