import { pino } from "pino";
import { describe, expect } from "vitest";
import { orgCreditsAccount, SystemAccounts } from "../../src/ledger/accounts.js";
import { checkLedger } from "../../src/ledger/check.js";
import { reconcileLedger } from "../../src/ledger/reconcile.js";
import { createMetrics } from "../../src/observability/metrics.js";
import { startWorkers } from "../../src/workers/start-workers.js";
import { createTestApp, manualClock, type TestApp } from "../support/app.js";
import { dbTest } from "../support/fixtures.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import { waitFor } from "../support/process.js";
import { clearRedisPrefix, createTestRedis, uniqueRedisPrefix } from "../support/redis.js";

const clock = manualClock(new Date());
const silent = pino({ level: "silent" });

type LedgerHelpers = {
  takeHold(orgId: string, amount: bigint, status?: "active" | "expired"): Promise<string>;
  orgWithLiveHold(): Promise<{ id: string; orgKey: string; gatewayKey: string; holdId: string; held: bigint }>;
  postRaw(orgId: string, kind: string, entries: [string, bigint][]): Promise<string>;
  returnHeldAgain(org: { id: string }, amount: bigint): Promise<unknown>;
  undoReturn(org: { id: string }, amount: bigint): Promise<unknown>;
};

const it = dbTest.extend<{ app: TestApp; ledger: LedgerHelpers }>({
  /** The app with /metrics on, and a ledger check every 200 ms for the worker test. */
  app: [
    async ({ db }, use) =>
      use(
        createTestApp({
          sql: db.sql,
          clock,
          config: { LEDGER_CHECK_INTERVAL_MS: "200" },
          extra: { metrics: createMetrics({ sql: db.appSql }) },
        }),
      ),
    { scope: "file" },
  ],
  /** Ways to write the ledger by hand, right and wrong, for the check to judge. */
  ledger: [
    async ({ db, app }, use) => {
      /**
       * A hold as the metering path writes it: the row alone, whose trigger reserves its amount on
       * the credits account. Written here rather than through /v1/billing/authorize so that these
       * tests judge the check alone, whatever the engine does.
       */
      async function takeHold(orgId: string, amount: bigint, status: "active" | "expired" = "active") {
        const id = `hold_raw_${Math.random().toString(36).slice(2)}`;
        await db.sql.begin(async (tx) => {
          await tx`insert into holds (id, org_id, amount, status, product, estimate, catalog_version, expires_at, created_at)
                   values (${id}, ${orgId}, ${amount.toString()}, 'active', 'api', '{}', '2026-01-01', ${new Date(clock().getTime() + 3600_000)}, ${clock()})`;
          if (status === "expired") {
            await tx`update holds set status = 'expired', closed_at = ${clock()} where id = ${id}`;
          }
        });
        return id;
      }

      /** An org with $1.00 and one live hold of $0.0125. */
      async function orgWithLiveHold() {
        const org = await app.createOrg();
        await app.grant(org.id, "1.00");
        const held = 12_500_000n;
        return { ...org, holdId: await takeHold(org.id, held), held };
      }

      /** A balanced movement written with plain SQL, triggers on: the caches follow, the holds table does not. */
      async function postRaw(orgId: string, kind: string, entries: [string, bigint][]) {
        const id = `txn_raw_${Math.random().toString(36).slice(2)}`;
        await db.sql.begin(async (tx) => {
          const at = clock();
          await tx`insert into ledger_transactions (id, org_id, kind, idempotency_key, created_at) values (${id}, ${orgId}, ${kind}, ${id}, ${at})`;
          const rows = entries.map(([account_id, amount]) => ({
            transaction_id: id,
            account_id,
            amount: amount.toString(),
            created_at: at,
          }));
          await tx`insert into ledger_entries ${tx(rows, "transaction_id", "account_id", "amount", "created_at")}`;
        });
        return id;
      }

      /**
       * The bug of issue 11, as it could happen now: a hold's reservation given back without the
       * hold being closed (what only an owner writing with the triggers off can do). The caches of
       * the balances stay right; only `held` is wrong.
       */
      const changeReservation = (org: { id: string }, delta: bigint) =>
        db.sql.begin(async (tx) => {
          await tx`set local session_replication_role = replica`;
          await tx`update ledger_accounts set held = held + ${delta.toString()} where id = ${orgCreditsAccount(org.id)}`;
        });
      const returnHeldAgain = (org: { id: string }, amount: bigint) => changeReservation(org, -amount);
      const undoReturn = (org: { id: string }, amount: bigint) => changeReservation(org, amount);

      await use({ takeHold, orgWithLiveHold, postRaw, returnHeldAgain, undoReturn });
    },
    { scope: "file" },
  ],
});

describe("ledger reconciliation", () => {
  it("finds nothing on a ledger with live and closed holds", async ({ db, ledger: { takeHold, orgWithLiveHold } }) => {
    const org = await orgWithLiveHold();
    await takeHold(org.id, 3_000_000n, "expired");
    await takeHold(org.id, 0n);
    await expectLedgerConsistent(db.sql);
  });

  it("finds a reservation given back without its hold closing: held no longer equals the live holds", async ({
    db,
    ledger: { orgWithLiveHold, returnHeldAgain, undoReturn },
  }) => {
    const org = await orgWithLiveHold();
    await returnHeldAgain(org, org.held);
    const check = await checkLedger(db.sql);
    expect(check.heldMismatches).toEqual([{ orgId: org.id, held: 0n, liveHolds: org.held }]);
    expect(check.balanceMismatches).toEqual([]);
    expect(check.unbalancedTransactions).toEqual([]);
    await undoReturn(org, org.held);
    await expectLedgerConsistent(db.sql);
  });

  it("finds a hold row written without its reservation (triggers off)", async ({ db, app }) => {
    const org = await app.createOrg();
    const hold = `hold_raw_${org.id}`;
    await db.sql.begin(async (tx) => {
      await tx`set local session_replication_role = replica`;
      await tx`
        insert into holds (id, org_id, amount, status, product, estimate, catalog_version, expires_at, created_at)
        values (${hold}, ${org.id}, 700, 'active', 'api', '{}', '2026-01-01', ${new Date(clock().getTime() + 3600_000)}, ${clock()})`;
    });
    expect((await checkLedger(db.sql)).heldMismatches).toEqual([{ orgId: org.id, held: 0n, liveHolds: 700n }]);
    await db.sql.begin(async (tx) => {
      await tx`set local session_replication_role = replica`;
      await tx`update holds set status = 'expired', closed_at = ${clock()} where id = ${hold}`;
    });
    await expectLedgerConsistent(db.sql);
  });

  it("finds money left in an organization's old held account (where holds moved money before migration 0037)", async ({
    db,
    app,
    ledger: { postRaw },
  }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "1.00");
    const heldAccount = `org:${org.id}:held`;
    await db.sql`insert into ledger_accounts (id, org_id, kind) values (${heldAccount}, ${org.id}, 'org_held')`;
    await postRaw(org.id, "hold", [
      [orgCreditsAccount(org.id), -900n],
      [heldAccount, 900n],
    ]);
    const check = await checkLedger(db.sql);
    expect(check.heldMismatches).toEqual([{ orgId: org.id, held: 900n, liveHolds: 0n }]);
    expect(check.balanceMismatches).toEqual([]);
    await postRaw(org.id, "hold_expiry", [
      [heldAccount, -900n],
      [orgCreditsAccount(org.id), 900n],
    ]);
    await expectLedgerConsistent(db.sql);
  });

  it("finds a drifted balance cache and an unbalanced transaction written with the triggers off", async ({
    db,
    app,
  }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "2.00");
    const txn = `txn_raw_unbalanced_${org.id}`;
    await db.sql.begin(async (tx) => {
      // What a superuser restoring data can do: no trigger checks balance, cache or immutability.
      await tx`set local session_replication_role = replica`;
      await tx`update ledger_accounts set balance = balance + 5 where id = ${orgCreditsAccount(org.id)}`;
      await tx`insert into ledger_transactions (id, org_id, kind, idempotency_key) values (${txn}, ${org.id}, 'grant', ${txn})`;
      await tx`insert into ledger_entries (transaction_id, account_id, amount) values (${txn}, ${SystemAccounts.grants}, -3)`;
    });
    const check = await checkLedger(db.sql);
    expect(check.unbalancedTransactions).toEqual([{ transactionId: txn, sum: -3n }]);
    expect(check.balanceMismatches).toEqual([
      { accountId: orgCreditsAccount(org.id), cached: 2_000_000_005n, fromEntries: 2_000_000_000n },
    ]);
    expect(check.heldMismatches).toEqual([]);
    await db.sql.begin(async (tx) => {
      await tx`set local session_replication_role = replica`;
      await tx`update ledger_accounts set balance = balance - 5 where id = ${orgCreditsAccount(org.id)}`;
      await tx`delete from ledger_entries where transaction_id = ${txn}`;
      await tx`delete from ledger_transactions where id = ${txn}`;
    });
    await expectLedgerConsistent(db.sql);
  });

  it("raises one operator alert per broken org, kept while unchanged and opened again when its difference changes", async ({
    db,
    ledger: { orgWithLiveHold, returnHeldAgain, undoReturn },
  }) => {
    const org = await orgWithLiveHold();
    await returnHeldAgain(org, org.held);
    const alertOf = async () =>
      db.sql<{ id: string; details: Record<string, string>; acknowledged_at: Date | null }[]>`
        select id, details, acknowledged_at from operator_alerts where kind = 'ledger_held_mismatch' and subject = ${org.id}`;
    const first = await reconcileLedger({ sql: db.sql, logger: silent }, clock());
    expect(first.mismatches).toBe(1);
    const [alert] = await alertOf();
    expect(alert!.details).toEqual({
      org_id: org.id,
      held_nano_usd: "0",
      live_holds_nano_usd: "12500000",
      difference_nano_usd: "-12500000",
    });
    await db.sql`update operator_alerts set acknowledged_at = ${clock()} where id = ${alert!.id}`;

    await reconcileLedger({ sql: db.sql, logger: silent }, clock());
    expect(await alertOf()).toEqual([{ ...alert!, acknowledged_at: clock() }]); // the same problem: still acknowledged

    await undoReturn(org, 1n); // another difference
    await reconcileLedger({ sql: db.sql, logger: silent }, clock());
    const [reopened] = await alertOf();
    expect(reopened).toMatchObject({
      id: alert!.id,
      acknowledged_at: null,
      details: { difference_nano_usd: "-12499999" },
    });

    await undoReturn(org, org.held - 1n);
    expect((await reconcileLedger({ sql: db.sql, logger: silent }, clock())).mismatches).toBe(0);
  });

  it("the worker runs the check on its interval: an operator alert, an error log line and /metrics report the mismatch", async ({
    db,
    app,
    ledger: { orgWithLiveHold, returnHeldAgain, undoReturn },
  }) => {
    const metric = async (name: string) => {
      const text = (await app.call("GET", "/metrics")).text;
      const line = text.split("\n").find((l) => l.startsWith(`${name} `));
      return line === undefined ? undefined : Number(line.slice(name.length + 1));
    };
    const org = await orgWithLiveHold();
    await returnHeldAgain(org, org.held);
    const redis = createTestRedis();
    const prefix = uniqueRedisPrefix("ledger-check");
    const logged: Record<string, unknown>[] = [];
    const logger = pino({ level: "info" }, { write: (line: string) => void logged.push(JSON.parse(line)) });
    const [{ last }] = (await db.sql`select coalesce(max(id), 0) as last from ledger_checks`) as unknown as [
      { last: bigint },
    ];
    // Sweeps every minute, so the only maintenance job that matters here is the 200 ms ledger check.
    const workers = await startWorkers({
      sql: db.appSql,
      connection: redis,
      prefix,
      logger,
      clock: () => new Date(),
      config: app.config,
      maintenanceEveryMs: 60_000,
    });
    try {
      await waitFor(
        async () =>
          (await db.sql`select 1 from operator_alerts where kind = 'ledger_held_mismatch' and subject = ${org.id}`)
            .length === 1,
        {
          timeoutMs: 15_000,
          what: "the worker's ledger check alert",
        },
      );
      expect(await metric('hanzo_ledger_check_mismatches{kind="held"}')).toBe(1);
      expect(await metric('hanzo_ledger_check_mismatches{kind="balance_cache"}')).toBe(0);
      expect(await metric("hanzo_ledger_check_last_run_timestamp_seconds")).toBeGreaterThan(Date.now() / 1000 - 60);
      const errors = logged.filter((l) => l.level === 50 && String(l.msg).startsWith("ledger check found mismatches"));
      expect(errors.length).toBeGreaterThanOrEqual(1);
      expect(errors[0]).toMatchObject({
        held_mismatches: 1,
        examples: [{ kind: "ledger_held_mismatch", org_id: org.id }],
      });

      await undoReturn(org, org.held); // repaired: the runs that start from now on find nothing
      const repairedAt = new Date();
      await waitFor(
        async () =>
          (await db.sql`select 1 from ledger_checks where checked_at > ${repairedAt} and held_mismatches = 0`).length >
          0,
        { timeoutMs: 15_000, what: "a clean run after the repair" },
      );
      await waitFor(async () => (await metric('hanzo_ledger_check_mismatches{kind="held"}')) === 0, {
        timeoutMs: 15_000,
        what: "/metrics to show the clean run",
      });
    } finally {
      await workers.close();
      await clearRedisPrefix(redis, `{${prefix}}`);
      redis.disconnect();
    }
    const runs = await db.sql`select held_mismatches from ledger_checks where id > ${last} order by id`;
    expect(runs.length).toBeGreaterThanOrEqual(2);
    // Several runs saw the same broken org: still one alert.
    expect(
      await db.sql`select 1 from operator_alerts where kind = 'ledger_held_mismatch' and subject = ${org.id}`,
    ).toHaveLength(1);
  });
});
