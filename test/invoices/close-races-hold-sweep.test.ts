/**
 * lockOrgs (src/billing/org-locks.ts) read the org's account row FOR UPDATE and, in the same
 * statement, the holds past their expiry (`lapsed`) and grant_expiry_taken. Under READ COMMITTED a
 * statement that waited for the row lock gets the row as the other transaction left it, but reads
 * every other table with the snapshot it took before waiting. A close that waited behind a metering
 * batch (here the sweeper) expiring a lapsed hold saw the account's `held` already lowered by the
 * hold AND the hold still active and lapsed: it gave the hold back twice, and paid the cycle's
 * charges with credits the org did not have (helper-89). The lock is now a statement of its own.
 *
 * The test orders the real race with an advisory lock taken by a trigger it adds to its own
 * database (it writes nothing): the sweep holds the org's lock, having expired the hold, when the
 * close starts.
 *
 * Story: $100 of credits; a +$200 adjustment queued in October; a $100 hold at 23:50 on 31 October
 * that lapses at 23:51; the October close at 00:00:05 on 1 November, while the sweeper expires the
 * hold. The credits pay $100 and $100 is due. Raced, the close pays $200 and the org's credits end
 * at -$100.
 */
import { describe, expect } from "vitest";
import { expireHolds } from "../../src/billing/holds.js";
import { manualClock, TEST_ADMIN_KEY, type TestApp } from "../support/app.js";
import { contextAt } from "../support/context.js";
import { appTest as it } from "../support/fixtures.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import { advisoryWaiters, holdLocks, waitFor } from "../support/lock-waits.js";
import { closeCycles } from "../support/plan-calls.js";

const clock = manualClock(new Date("2026-10-05T10:00:00Z"));

async function story(app: TestApp) {
  clock.set(new Date("2026-10-05T10:00:00Z"));
  const org = await app.createOrg(`close vs sweep ${Math.random()}`);
  await app.grant(org.id, "100.00");
  clock.set(new Date("2026-10-20T10:00:00Z"));
  const adj = await app.call("POST", `/v1/admin/orgs/${org.id}/adjustments`, {
    key: TEST_ADMIN_KEY,
    headers: { "idempotency-key": "adj-1" },
    body: { amount: "200.00", description: "setup fee" },
  });
  expect(adj.status, adj.text).toBeLessThan(300);
  clock.set(new Date("2026-10-31T23:50:00Z"));
  const hold = await app.call("POST", "/v1/billing/authorize", {
    key: org.gatewayKey,
    body: { org_id: org.id, product: "api", estimate: { requests: 1_000_000 }, ttl_seconds: 60 },
  });
  expect(hold.status, hold.text).toBe(201);

  clock.set(new Date("2026-11-01T00:00:05Z"));
  return org;
}

describe("a cycle close racing the sweep of a lapsed hold", () => {
  it.scoped({ appOptions: { clock }, dbOptions: { max: 10 } });

  // The same story, the sweep done before the close.
  it("the sweep first, then the close", async ({ app, db }) => {
    const org = await story(app);
    await expireHolds(contextAt(db.appSql, clock()));
    expect((await closeCycles(app, org.id)).json.invoices_created).toBe(1);
    const [inv] = await db.sql<{ subtotal: string; amount_due: string; status: string }[]>`
      select subtotal::text, amount_due::text, status from invoices where org_id = ${org.id}`;
    const balance = (await app.call("GET", "/v1/billing/balance", { key: org.orgKey })).json;
    expect({ invoice: inv, credits: balance.credits_nano_usd }).toEqual({
      invoice: { subtotal: "200000000000", amount_due: "100000000000", status: "open" },
      credits: "0",
    });
  });

  it("counts the lapsed hold's money once", { timeout: 60_000 }, async ({ app, db }) => {
    const org = await story(app);
    const now = clock();
    // Test-only instrument: the sweep's transaction waits on advisory lock 4242 after it expired a hold.
    await db.sql.unsafe(`
      create function zz_pause() returns trigger language plpgsql as $$
      begin perform pg_advisory_xact_lock(4242); return new; end $$;
      create trigger zz_pause after update on holds for each row when (new.status = 'expired') execute function zz_pause();
      grant execute on function zz_pause() to public;`);

    const base = await advisoryWaiters(db.sql);
    const holder = await holdLocks(db.sql, (tx) => tx`select pg_advisory_xact_lock(4242)`);
    const swept = expireHolds(contextAt(db.appSql, now));
    await waitFor(async () => (await advisoryWaiters(db.sql)) > base, "the sweep holding the org's lock");
    const closing = closeCycles(app, org.id);
    await waitFor(async () => {
      const [w] = await db.sql<{ n: number }[]>`
        select count(*)::int as n from pg_stat_activity
        where datname = current_database() and wait_event_type = 'Lock' and wait_event in ('transactionid', 'tuple')`;
      return (w?.n ?? 0) > 0;
    }, "the close waiting for the org's lock");
    await holder.release();
    expect(await swept).toBe(1);
    const closed = await closing;
    expect(closed.json.invoices_created, closed.text).toBe(1);
    await db.sql.unsafe("drop trigger zz_pause on holds; drop function zz_pause()");

    const [inv] = await db.sql<{ subtotal: string; amount_due: string; status: string }[]>`
      select subtotal::text, amount_due::text, status from invoices where org_id = ${org.id}`;
    const balance = (await app.call("GET", "/v1/billing/balance", { key: org.orgKey })).json;
    await expectLedgerConsistent(db.sql);
    // $100 of credits pay $100 of the $200; the rest is due; the credits end at 0.
    expect({ invoice: inv, credits: balance.credits_nano_usd }).toEqual({
      invoice: { subtotal: "200000000000", amount_due: "100000000000", status: "open" },
      credits: "0",
    });
  });
});
