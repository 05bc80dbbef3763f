import { describe, expect } from "vitest";
import { emitEvent } from "../../src/billing/events/emit.js";
import type { Sql, TransactionSql } from "../../src/db/client.js";
import { manualClock } from "../support/app.js";
import { appTest as it } from "../support/fixtures.js";
import { waitFor } from "../support/process.js";

/**
 * What numbering events at commit (billing_events_seq_at_commit, src/db/functions/events.sql) costs
 * and which locks it takes, found by attacking its first version: it looked for the transaction's
 * events by scanning every event still without its final seq, in every firing (once per event).
 * After the first firing, the transaction's old provisional versions were still in that index, so
 * a transaction of N events read ~2.5 N^2 index entries at commit (a usage report taking 1,000
 * organizations below their threshold and to zero, 2,000 events: 633-1,256 ms against 270-619 ms
 * before), and every commit in the database read the dead versions left since the last vacuum
 * (after 80,000 events: 1.2 -> 9 ms a one-event commit, 11-19 ms while a snapshot was held). Each
 * firing now reads its own row only. Counted in index entries read, not timed.
 */
/**
 * Fires the transaction's pending numbering now instead of at its commit (the same firings, one per
 * event) and returns how many index entries of billing_events they read: the transaction's own
 * statistics tell.
 */
async function numberingIndexReads(tx: TransactionSql): Promise<bigint> {
  const reads = async () =>
    BigInt(
      (
        await tx<{ reads: string }[]>`
          select sum(pg_stat_get_xact_tuples_returned(indexrelid))::text as reads
          from pg_index where indrelid = 'billing_events'::regclass`
      )[0]!.reads,
    );
  const before = await reads();
  await tx`set constraints billing_events_seq_at_commit immediate`;
  return (await reads()) - before;
}

/** Waits until backend `pid()` (known once its transaction has started) waits on `event`. */
function backendWaitsOn(sql: Sql, pid: () => number | undefined, event: string) {
  return waitFor(
    async () => {
      const known = pid();
      if (!known) return false;
      const [row] = await sql<
        { wait_event: string | null }[]
      >`select wait_event from pg_stat_activity where pid = ${known}`;
      return row?.wait_event === event;
    },
    { timeoutMs: 30_000, intervalMs: 25, what: `a backend waiting on ${event}` },
  );
}

describe("billing_events_seq_at_commit: what numbering events at commit costs, and the order of its locks", () => {
  const clock = manualClock(new Date("2026-11-15T12:00:00Z"));
  it.scoped({ dbOptions: { max: 10 }, appOptions: { clock } });

  it("numbering a transaction's events at commit reads each of them a bounded number of times (not once per event)", async ({
    app,
    db,
  }) => {
    const orgs = [await app.createOrg("A"), await app.createOrg("B")];
    const readsFor = (n: number) =>
      db.appSql.begin(async (tx) => {
        for (let i = 0; i < n; i++)
          await emitEvent(tx, {
            orgId: orgs[i % 2]!.id,
            type: "test.ping",
            factKey: `q-${n}-${i}`,
            data: {},
            at: new Date(),
          });
        const reads = await numberingIndexReads(tx);
        const [left] = await tx<{ n: number }[]>`select count(*)::int as n from billing_events where seq < 0`;
        expect(left?.n).toBe(0);
        return reads;
      });
    const small = await readsFor(250);
    const large = await readsFor(1000);
    console.log(`index entries read numbering 250 events: ${small}; 1,000 events: ${large}`);
    // The first version: 250 -> 125,250 entries, 1,000 -> 2,501,000 (~2.5 N^2). Now a probe per event.
    expect(small).toBeLessThanOrEqual(2n * 250n);
    expect(large).toBeLessThanOrEqual(2n * 1000n);
  });

  it("an event's commit reads as many index entries after 80,000 events committed since the last vacuum, with a snapshot held open, as before them", {
    timeout: 300_000,
  }, async ({ app, db }) => {
    const a = await app.createOrg("A");
    const b = await app.createOrg("B");
    await db.sql`vacuum billing_events`;
    let k = 0;
    /** Index entries one event's numbering reads. */
    const oneEventReads = () =>
      db.appSql.begin(async (tx) => {
        await emitEvent(tx, { orgId: a.id, type: "test.ping", factKey: `p-${++k}`, data: {}, at: new Date() });
        return numberingIndexReads(tx);
      });
    await oneEventReads(); // warm
    // A snapshot held open (an export streaming to a slow client, pg_dump, hot_standby_feedback):
    // nothing committed from here on can be vacuumed away.
    const holder = await db.sql.reserve();
    try {
      await holder`begin isolation level repeatable read`;
      await holder`select count(*) from organizations`;
      const baseline = await oneEventReads();
      // 80,000 events of org B committed meanwhile, in the state 80,000 commits leave them: each a
      // live row with its final seq and a dead version with its provisional one. Made in one
      // transaction as the owner with the triggers off (session_replication_role): 80,000 real
      // commits take minutes.
      await db.sql.begin(async (tx) => {
        await tx`set local session_replication_role = replica`;
        await tx`
          insert into billing_events (id, org_id, type, fact_key, data, created_at)
          select 'evt_bulk_' || i, ${b.id}, 'test.ping', 'bulk-' || i, '{}'::jsonb, now()
          from generate_series(1, 80000) i`;
        await tx`update billing_events set seq = nextval('billing_events_commit_seq') where seq < 0`;
      });
      const [premise] = await db.sql<
        { n: number }[]
      >`select count(*)::int as n from billing_events where org_id = ${b.id} and seq > 0`;
      expect(premise?.n).toBe(80_000);
      const after = await oneEventReads();
      console.log(`index entries one event's numbering reads: ${baseline}, then ${after} after 80,000 events`);
      expect(after).toBeLessThanOrEqual(baseline);
    } finally {
      await holder`rollback`;
      holder.release();
    }
  });

  it("events written at commit by card_topups_event, after the transaction's first numbering, take no lock out of key order: two such transactions crossing orgs both commit (no 40P01)", async ({
    app,
    db,
  }) => {
    // Not reachable through src/billing today (every path that inserts card_topups writes no event
    // before it, so card_topups_event fires before the first numbering), but nothing kept it so:
    // card_topups now notes its organization as it is written, and the first numbering locks it.
    const a = await app.createOrg("A");
    const b = await app.createOrg("B");
    const pids: Record<string, number> = {};
    const waitingOn = (name: string, event: string) => backendWaitsOn(db.sql, () => pids[name], event);
    /** An event of `first`, then a refused payment of `other`'s checkout: topup.failed for `other` at commit. */
    const writer = (name: string, first: string, other: string) =>
      db.appSql.begin(async (tx) => {
        const [row] = await tx<{ pid: number }[]>`select pg_backend_pid() as pid`;
        pids[name] = row!.pid;
        await emitEvent(tx, { orgId: first, type: "test.ping", factKey: `dl-${name}`, data: {}, at: new Date() });
        await tx`
          insert into card_checkouts (id, org_id, idempotency_key, request_hash, amount_cents, currency, payment_id, status, created_at, updated_at)
          values (${`co_${name}`}, ${other}, ${`k-${name}`}, 'h', 100, 'usd', ${`pi_${name}`}, 'completed', now(), now())`;
        await tx`
          insert into card_topups (payment_id, org_id, currency, amount_minor, state, reason, created_at, updated_at)
          values (${`pi_${name}`}, ${other}, 'eur', 100, 'refused', 'unsupported_currency: eur', now(), now())`;
      });
    // A racing transaction has written the same fact (topup.failed of co_t1: a checkout.session
    // .expired being handled) and has not ended: t1's card_topups_event waits for it, at commit.
    const racer = await db.appSql.reserve();
    await racer`begin`;
    await racer`select emit_event(${b.id}, 'topup.failed', 'co_t1', '{}'::jsonb, now())`;
    const t1 = writer("t1", a.id, b.id); // at commit: locks A, numbers, then waits for the racer
    await waitingOn("t1", "transactionid");
    const t2 = writer("t2", b.id, a.id); // at commit: locks B, numbers, writes topup.failed of A, waits for A
    await waitingOn("t2", "advisory");
    await racer`rollback`; // t1 writes topup.failed of B and asks for B's lock, which t2 holds
    racer.release();
    const outcomes = await Promise.allSettled([t1, t2]);
    const failures = outcomes.flatMap((o) =>
      o.status === "rejected" ? [`${(o.reason as { code?: string }).code}: ${(o.reason as Error).message}`] : [],
    );
    expect(failures).toEqual([]);
  });

  /**
   * Runs `body` in a transaction while another holds `orgId`'s numbering lock (as a transaction
   * numbering that organization's events at its commit does): the tested transaction must wait for
   * it at its commit, whatever its savepoints did to its list of organizations. Its events are
   * numbered only after the holder lets go.
   */
  const waitsForTheLockAtCommit = async (
    db: { appSql: Sql; sql: Sql },
    orgId: string,
    body: (tx: TransactionSql) => Promise<void>,
  ) => {
    const holder = await db.sql.reserve();
    try {
      await holder`begin`;
      await holder`select pg_advisory_xact_lock(hashtextextended(${`billing_events:${orgId}`}, 0))`;
      let pid: number | undefined;
      const tested = db.appSql.begin(async (tx) => {
        pid = (await tx<{ pid: number }[]>`select pg_backend_pid() as pid`)[0]!.pid;
        await body(tx);
      });
      await Promise.race([
        backendWaitsOn(db.sql, () => pid, "advisory"),
        tested.then(() => {
          throw new Error("the transaction committed without waiting for its organization's lock");
        }),
      ]);
      await holder`commit`;
      await tested;
    } finally {
      holder.release();
    }
  };

  it("a rollback to a savepoint in which SET CONSTRAINTS IMMEDIATE numbered the events: numbered again at the commit, under the lock", async ({
    app,
    db,
  }) => {
    const a = await app.createOrg("A");
    await waitsForTheLockAtCommit(db, a.id, async (tx) => {
      await emitEvent(tx, { orgId: a.id, type: "test.ping", factKey: "sp-1", data: {}, at: new Date() });
      await tx`savepoint s`;
      await tx`set constraints billing_events_seq_at_commit immediate`;
      await tx`rollback to savepoint s`;
      await emitEvent(tx, { orgId: a.id, type: "test.ping", factKey: "sp-2", data: {}, at: new Date() });
    });
    const rows = await db.sql<{ fact_key: string; seq: string }[]>`
      select fact_key, seq::text from billing_events where org_id = ${a.id} and type = 'test.ping' order by seq`;
    expect(rows.map((r) => r.fact_key)).toEqual(["sp-1", "sp-2"]);
    expect(rows.every((r) => BigInt(r.seq) > 0n)).toBe(true);
  });

  it("an event rolled back by a caught exception in plpgsql: the others are locked and numbered at the commit, in the order written", async ({
    app,
    db,
  }) => {
    const a = await app.createOrg("A");
    const b = await app.createOrg("B");
    await waitsForTheLockAtCommit(db, b.id, async (tx) => {
      await tx.unsafe(`
        do $$ begin
          perform billing.emit_event('${b.id}', 'test.ping', 'ex-1', '{}'::jsonb, now());
          begin
            perform billing.emit_event('${a.id}', 'test.ping', 'ex-lost', '{}'::jsonb, now());
            raise exception 'boom';
          exception when others then null;
          end;
          perform billing.emit_event('${a.id}', 'test.ping', 'ex-2', '{}'::jsonb, now());
          perform billing.emit_event('${b.id}', 'test.ping', 'ex-3', '{}'::jsonb, now());
        end $$`);
    });
    const rows = await db.sql<{ fact_key: string; seq: string }[]>`
      select fact_key, seq::text from billing_events where type = 'test.ping' and org_id in (${a.id}, ${b.id}) order by seq`;
    expect(rows.map((r) => r.fact_key)).toEqual(["ex-1", "ex-2", "ex-3"]);
    expect(rows.every((r) => BigInt(r.seq) > 0n)).toBe(true);
  });
});
