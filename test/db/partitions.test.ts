import { pino } from "pino";
import { describe, expect } from "vitest";
import { ensurePartitions } from "../../src/db/partitions.js";
import { orgCreditsAccount, SystemAccounts } from "../../src/ledger/accounts.js";
import { runMaintenance } from "../../src/workers/processors/maintenance.js";
import type { Sql } from "../../src/db/client.js";
import type { TestApp } from "../support/app.js";
import { appTest as it } from "../support/fixtures.js";
import { expectLedgerConsistent } from "../support/ledger.js";

/** The error a statement (or transaction) failed with; it must fail. */
async function refusal(run: () => Promise<unknown>): Promise<{ code?: string; message: string }> {
  try {
    await run();
  } catch (err) {
    return err as { code?: string; message: string };
  }
  throw new Error("it went through");
}

// usage_events and ledger_entries, partitioned by month (migration 0035, functions/partitions.sql,
// docs/scale.md "History that grows for years"). The database's partitions were made around the
// real month when the run's template was migrated, so the app's clock is the real time.
const NOW = new Date();

/** The first instant of the UTC month `delta` months from NOW's. */
function monthStart(delta: number): Date {
  return new Date(Date.UTC(NOW.getUTCFullYear(), NOW.getUTCMonth() + delta, 1));
}
const monthName = (d: Date) => d.toISOString().slice(0, 7).replace("-", "_");

describe("usage_events and ledger_entries partitioned by month", () => {
  it.scoped({ dbOptions: { max: 10 }, appOptions: { clock: () => NOW } });

  let seq = 0;
  const event = (orgId: string, timestamp: Date, extra: Record<string, unknown> = {}) => ({
    idempotency_key: `part-${++seq}`,
    org_id: orgId,
    timestamp: timestamp.toISOString(),
    product: "llm",
    model: "zen-pro",
    quantities: { input_tokens: 1000, output_tokens: 500 },
    ...extra,
  });
  const report = (app: TestApp, key: string, events: unknown[]) =>
    app.call("POST", "/v1/billing/usage", { key, body: { events } });

  /** The partition each of the org's usage events is in, by idempotency key. */
  async function usagePartitions(sql: Sql, orgId: string) {
    const rows = await sql<{ key: string; partition: string }[]>`
      select idempotency_key as key, tableoid::regclass::text as partition from usage_events where org_id = ${orgId}`;
    return Object.fromEntries(rows.map((r) => [r.key, r.partition]));
  }

  it("an event lands in its month's partition, a late one in its own month's, and its ledger entries in the posting's month", async ({
    app,
    db,
  }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "10");
    const late = new Date(monthStart(-2).getTime() + 3_600_000);
    const res = await report(app, org.gatewayKey, [
      event(org.id, new Date(NOW.getTime() - 60_000), { idempotency_key: "now" }),
      event(org.id, late, { idempotency_key: "late" }),
    ]);
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ recorded: 2, rejected: 0 });
    expect(await usagePartitions(db.sql, org.id)).toEqual({
      now: `usage_events_p${monthName(new Date(NOW.getTime() - 60_000))}`,
      late: `usage_events_p${monthName(late)}`,
    });
    // The usage transaction is posted now: both its entries in this month's partition, dated as it.
    const entries = await db.sql<{ partition: string; same: boolean }[]>`
      select e.tableoid::regclass::text as partition, e.created_at = t.created_at as same
      from ledger_transaction_orgs m join ledger_transactions t on t.id = m.transaction_id
      join ledger_entries e on e.transaction_id = t.id
      where m.org_id = ${org.id} and t.kind = 'usage'`;
    expect(entries).toEqual([
      { partition: `ledger_entries_p${monthName(NOW)}`, same: true },
      { partition: `ledger_entries_p${monthName(NOW)}`, same: true },
    ]);
    // The report reads across partitions: the late event counts in its own month.
    const lateMonth = await app.call(
      "GET",
      `/v1/billing/usage?start=${monthStart(-2).toISOString()}&end=${monthStart(-1).toISOString()}`,
      { key: org.orgKey },
    );
    expect(lateMonth.status).toBe(200);
    expect(lateMonth.json.products.map((p: { events: number }) => p.events)).toEqual([1]);
    await expectLedgerConsistent(db.sql);
  });

  it("an idempotency key is unique across months: a replay dated in another month is refused, never recorded twice", async ({
    app,
    db,
  }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "10");
    const first = event(org.id, new Date(NOW.getTime() - 60_000));
    expect((await report(app, org.gatewayKey, [first])).json.results[0].status).toBe("recorded");
    const again = await report(app, org.gatewayKey, [first]);
    expect(again.json.results[0].status).toBe("duplicate");
    const lastMonth = new Date(monthStart(-1).getTime() + 3_600_000);
    const moved = await report(app, org.gatewayKey, [{ ...first, timestamp: lastMonth.toISOString() }]);
    expect(moved.json.results[0]).toMatchObject({ status: "rejected", error: { code: "idempotency_key_reused" } });

    // Racing reports of one key, each dated in another month: one event, whichever wins.
    const racing = [0, 1, 2, 3].map((k) =>
      event(org.id, new Date(monthStart(-k).getTime() + 7_200_000), { idempotency_key: "racing" }),
    );
    const outcomes = await Promise.all(racing.map((e) => report(app, org.gatewayKey, [e])));
    const statuses = outcomes.map((r) => r.json.results[0].status).sort();
    expect(statuses).toEqual(["recorded", "rejected", "rejected", "rejected"]);
    const [n] = await db.sql<{ n: bigint }[]>`
      select count(*)::bigint as n from usage_events where org_id = ${org.id} and idempotency_key = 'racing'`;
    expect(n?.n).toBe(1n);

    // Written by hand, past the API, into another month's partition: the key table refuses it.
    const err = await refusal(
      () =>
        db.sql`
        insert into usage_events (id, org_id, idempotency_key, occurred_at, product, quantities, cost, catalog_version, recorded_at)
        values ('use_by_hand', ${org.id}, ${first.idempotency_key}, ${lastMonth}, 'llm', '{}', 0, '2026-01-01', now())`,
    );
    expect(err.code).toBe("23505");
    expect(err.message).toMatch(/usage_event_keys_pkey/);
    await expectLedgerConsistent(db.sql);
  });

  it("the ledger's rules hold across partitions: an entry must carry its transaction's date, and still balance", async ({
    app,
    db,
  }) => {
    const org = await app.createOrg();
    const credits = orgCreditsAccount(org.id);
    const write = (id: string, createdAt: Date, entries: [string, number, Date][]) =>
      db.sql.begin(async (tx) => {
        await tx`insert into ledger_transactions (id, org_id, kind, idempotency_key, created_at)
                 values (${id}, ${org.id}, 'grant', ${id}, ${createdAt})`;
        const rows = entries.map(([account_id, amount, at]) => ({
          transaction_id: id,
          account_id,
          amount: String(amount),
          created_at: at,
        }));
        await tx`insert into ledger_entries ${tx(rows, "transaction_id", "account_id", "amount", "created_at")}`;
      });
    const lastMonth = new Date(monthStart(-1).getTime() + 60_000);
    // Dated in another month than its transaction (it would sit in another partition).
    await expect(
      write("txn_split", NOW, [
        [credits, 5, NOW],
        [SystemAccounts.grants, -5, lastMonth],
      ]),
    ).rejects.toThrow(/must carry its created_at/);
    await expect(write("txn_unbalanced", lastMonth, [[credits, 5, lastMonth]])).rejects.toThrow(/unbalanced/);
    // A transaction of last month, written now, is found by the has-entries check in its partition.
    await write("txn_last_month", lastMonth, [
      [credits, 5, lastMonth],
      [SystemAccounts.grants, -5, lastMonth],
    ]);
    const [row] = await db.sql<{ partition: string }[]>`
      select tableoid::regclass::text as partition from ledger_entries where transaction_id = 'txn_last_month' limit 1`;
    expect(row?.partition).toBe(`ledger_entries_p${monthName(lastMonth)}`);
    // A later entry for it, balanced or not, dated as it or not, is refused.
    await expect(
      db.sql`insert into ledger_entries (transaction_id, account_id, amount, created_at)
             values ('txn_last_month', ${credits}, 1, ${lastMonth})`,
    ).rejects.toThrow(/unbalanced/);
    await expect(
      db.sql`insert into ledger_entries (transaction_id, account_id, amount)
             values ('txn_last_month', ${credits}, 1), ('txn_last_month', ${SystemAccounts.grants}, -1)`,
    ).rejects.toThrow(/must carry its created_at/);
    // Immutable in every partition, through the parent or the partition itself.
    await expect(db.sql`update ledger_entries set amount = 6 where transaction_id = 'txn_last_month'`).rejects.toThrow(
      /append-only/,
    );
    await expect(
      db.sql.unsafe(`delete from ledger_entries_p${monthName(lastMonth)} where transaction_id = 'txn_last_month'`),
    ).rejects.toThrow(/append-only/);
    const [balance] = await db.sql<{ balance: bigint }[]>`select balance from ledger_accounts where id = ${credits}`;
    expect(balance?.balance).toBe(5n);
    await expectLedgerConsistent(db.sql);
  });

  it("the app's role reaches partitions only through their parents", async ({ db }) => {
    const month = `usage_events_p${monthName(NOW)}`;
    const err = await refusal(() => db.appSql.unsafe(`select count(*) from ${month}`));
    expect(err.code).toBe("42501");
    const entries = await refusal(() =>
      db.appSql.unsafe(
        `insert into ledger_entries_p${monthName(NOW)} (id, transaction_id, account_id, amount, created_at) values (1, 'x', 'system:grants', 1, now())`,
      ),
    );
    expect(entries.code).toBe("42501");
    const tooFar = await refusal(() => db.appSql`select * from partitions_ensure(25)`);
    expect(tooFar.code).toBe("22023");
  });

  it("the job makes months ahead, once, when two workers run it at the same time", async ({ db }) => {
    const before = await db.sql<{ partition: string }[]>`select partition from partitions`;
    const runs = await Promise.all([ensurePartitions(db.appSql, 6), ensurePartitions(db.appSql, 6)]);
    const created = [...runs[0].created, ...runs[1].created].map((p) => `${p.table}_p${p.month.replace("-", "_")}`);
    const expected = [4, 5, 6].flatMap((k) =>
      ["ledger_entries", "usage_events"].map((t) => `${t}_p${monthName(monthStart(k))}`),
    );
    expect(created.sort()).toEqual(expected.sort());
    expect(runs.flatMap((r) => r.inDefault)).toEqual([]);
    const after = await db.sql<{ partition: string }[]>`select partition from partitions`;
    expect(after.map((p) => p.partition).sort()).toEqual([...before.map((p) => p.partition), ...expected].sort());
    expect(await ensurePartitions(db.appSql, 6)).toEqual({ created: [], inDefault: [] });
    // The maintenance task the workers schedule hourly, with PARTITION_MONTHS_AHEAD.
    const job = await runMaintenance(
      {
        sql: db.appSql,
        clock: () => NOW,
        config: { PARTITION_MONTHS_AHEAD: 7 },
        logger: pino({ level: "silent" }),
      } as unknown as Parameters<typeof runMaintenance>[0],
      { task: "ensure-partitions" },
      { scanEveryMs: 1000 },
    );
    const seventh = monthStart(7).toISOString().slice(0, 7);
    expect(job).toEqual({
      created: [
        { table: "ledger_entries", month: seventh },
        { table: "usage_events", month: seventh },
      ],
      in_default: [],
    });
    // A new partition takes usage at once, and the app may not touch it directly either.
    const [org] = await db.sql<
      { id: string }[]
    >`insert into organizations (id, name) values ('org_ahead', 'Ahead') returning id`;
    const at = new Date(monthStart(5).getTime() + 1000);
    await db.sql`
      insert into usage_events (id, org_id, idempotency_key, occurred_at, product, quantities, cost, catalog_version, recorded_at)
      values ('use_ahead', ${org!.id}, 'ahead', ${at}, 'llm', '{}', 0, '2026-01-01', now())`;
    const [row] = await db.sql<{ partition: string }[]>`
      select tableoid::regclass::text as partition from usage_events where id = 'use_ahead'`;
    expect(row?.partition).toBe(`usage_events_p${monthName(at)}`);
    const err = await refusal(() => db.appSql.unsafe(`select 1 from usage_events_p${monthName(at)}`));
    expect(err.code).toBe("42501");
  });

  it("a timestamp with no month partition is kept, never lost: years back in `before`, a month nobody made in the default partition, which the job then leaves", async ({
    app,
    db,
  }) => {
    const org = await app.createOrg();
    // The API takes no event dated more than 5 minutes ahead, nor one before the catalog's first version.
    const ahead = await report(app, org.gatewayKey, [event(org.id, new Date("2031-06-01T00:00:00Z"))]);
    expect(ahead.status).toBe(200);
    expect(ahead.json.results[0]).toMatchObject({ status: "rejected", error: { param: "timestamp" } });
    const old = await report(app, org.gatewayKey, [event(org.id, new Date("1999-06-01T00:00:00Z"))]);
    expect(old.status).toBeLessThan(500);
    expect(old.json.results?.[0]?.status ?? "rejected").toBe("rejected");

    // Past the API (an import, a backfill): every row is kept.
    const farAhead = monthStart(20);
    const insert = (id: string, at: Date) =>
      db.sql`
        insert into usage_events (id, org_id, idempotency_key, occurred_at, product, quantities, cost, catalog_version, recorded_at)
        values (${id}, ${org.id}, ${id}, ${at}, 'llm', '{}', 0, '2026-01-01', now())`;
    await insert("use_1999", new Date("1999-06-01T00:00:00Z"));
    await insert("use_far_ahead", new Date(farAhead.getTime() + 1000));
    await db.sql.begin(async (tx) => {
      await tx`insert into ledger_transactions (id, org_id, kind, idempotency_key, created_at)
               values ('txn_far_ahead', ${org.id}, 'grant', 'txn_far_ahead', ${farAhead})`;
      await tx`insert into ledger_entries (transaction_id, account_id, amount, created_at) values
               ('txn_far_ahead', ${orgCreditsAccount(org.id)}, 3, ${farAhead}), ('txn_far_ahead', ${SystemAccounts.grants}, -3, ${farAhead})`;
    });
    expect(await usagePartitions(db.sql, org.id)).toEqual({
      use_1999: "usage_events_before",
      use_far_ahead: "usage_events_default",
    });
    const [entry] = await db.sql<{ partition: string }[]>`
      select tableoid::regclass::text as partition from ledger_entries where transaction_id = 'txn_far_ahead' limit 1`;
    expect(entry?.partition).toBe("ledger_entries_default");

    // The job reaching that month leaves it to the default partition (and says so); the months
    // around it are made, and the rows stay where they are, read like any other.
    const { created, inDefault } = await ensurePartitions(db.appSql, 21);
    expect(inDefault).toEqual([
      { table: "ledger_entries", month: farAhead.toISOString().slice(0, 7) },
      { table: "usage_events", month: farAhead.toISOString().slice(0, 7) },
    ]);
    expect(created.map((p) => p.month)).toContain(monthStart(21).toISOString().slice(0, 7));
    expect(created.map((p) => p.month)).not.toContain(farAhead.toISOString().slice(0, 7));
    expect(await usagePartitions(db.sql, org.id)).toMatchObject({ use_far_ahead: "usage_events_default" });
    const [credits] = await db.sql<{ balance: bigint }[]>`
      select balance from ledger_accounts where id = ${orgCreditsAccount(org.id)}`;
    expect(credits?.balance).toBe(3n);
    await expectLedgerConsistent(db.sql);
  });
});
