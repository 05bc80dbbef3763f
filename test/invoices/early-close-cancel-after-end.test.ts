/**
 * An early end is refused when the plan's price or credits change within the month; that check was
 * skipped for any cancelled subscription, a cancel dated after the early end included (made by a
 * process whose clock is ahead, or by a request that read the clock after the close's and committed
 * first). The short cycle after the early end, which such a cancel still charges, was then charged
 * at the new price while the month kept the credits granted on the old terms (found by helper-75).
 */
import { describe, expect } from "vitest";
import { createTestApp, manualClock, TEST_ADMIN_KEY } from "../support/app.js";
import { loadPlanVersions } from "../support/catalog-versions.js";
import { appTest as it } from "../support/fixtures.js";
import { catalogPlan, closeCycles, subscribeTo } from "../support/plan-calls.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import { holdLocks } from "../support/lock-waits.js";

const USD = 1_000_000_000n;
const admin = { key: TEST_ADMIN_KEY };
const clock = manualClock();

describe("an early close after a cancel dated later than the early end", () => {
  it.scoped({ appOptions: { clock } });

  it("the plan's price halved from 15 Nov, a process ahead cancels: the early end on 16 Nov is refused, November costs $200 for $250", async ({
    app,
    db,
  }) => {
    await loadPlanVersions(db.sql, [
      { effectiveAt: "2026-10-01T00:00:00Z", plans: (stock) => [...stock, catalogPlan("halving", "200.00", "250.00")] },
      { effectiveAt: "2026-11-15T00:00:00Z", plans: (stock) => [...stock, catalogPlan("halving", "100.00", "125.00")] },
    ]);
    clock.set(new Date("2026-11-01T00:00:00Z"));
    const org = await app.createOrg("future cancel");
    expect((await subscribeTo(app, org.id, "halving")).status).toBe(200); // $250 of credits for November
    // Without the cancel the early end is refused (the plan's terms changed within the month).
    clock.set(new Date("2026-11-16T00:00:00Z"));
    const refused = await closeCycles(app, org.id, true);
    expect(refused.status, refused.text).toBe(409);
    // Another process, 2 minutes ahead, cancels (dated 16 Nov 00:02); then this one ends the cycle at 00:00:30.
    const ahead = createTestApp({ sql: db.appSql, clock: () => new Date(clock().getTime() + 120_000) });
    const canceled = await ahead.call("DELETE", `/v1/admin/orgs/${org.id}/subscription`, admin);
    expect(canceled.json.canceled_at, canceled.text).toBe("2026-11-16T00:02:00.000Z");
    clock.set(new Date("2026-11-16T00:00:30Z"));
    const ended = await closeCycles(app, org.id, true);
    clock.set(new Date("2026-12-01T00:00:05Z"));
    await closeCycles(app, org.id);
    const [month] = await db.sql<{ charged: bigint; credits: bigint }[]>`
      select (select sum(l.amount) from invoice_lines l join invoices i on i.id = l.invoice_id
              where i.org_id = ${org.id} and l.kind = 'subscription' and i.period_end <= '2026-12-01T00:00:00Z')::bigint as charged,
             (select sum(amount) from credit_grants where org_id = ${org.id} and source = 'plan'
              and expires_at = '2026-12-01T00:00:00Z')::bigint as credits`;
    expect({ endedEarly: ended.status, ...month }).toEqual({
      endedEarly: 409,
      charged: 200n * USD,
      credits: 250n * USD,
    });
    await expectLedgerConsistent(db.sql);
  });

  it("one process, no skew: an early end that read its clock at 16 Nov 00:00:30 and a cancel at 00:00:40 that commits before it is refused", async ({
    app,
    db,
  }) => {
    await loadPlanVersions(db.sql, [
      { effectiveAt: "2026-10-01T00:00:00Z", plans: (stock) => [...stock, catalogPlan("halving", "200.00", "250.00")] },
      { effectiveAt: "2026-11-15T00:00:00Z", plans: (stock) => [...stock, catalogPlan("halving", "100.00", "125.00")] },
    ]);
    clock.set(new Date("2026-11-01T00:00:00Z"));
    const org = await app.createOrg("future cancel, one process");
    expect((await subscribeTo(app, org.id, "halving")).status).toBe(200);
    clock.set(new Date("2026-11-16T00:00:30Z"));
    // Hold the close at its first (unlocked) read of the org's usage, which the cancel does not make.
    const holder = await holdLocks(db.sql, (tx) => tx`lock table usage_events in access exclusive mode`);
    const ended = closeCycles(app, org.id, true); // reads its clock: 16 Nov 00:00:30
    for (let i = 0; i < 500; i++) {
      const [r] = await db.sql<{ n: number }[]>`
        select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and datname = current_database()`;
      if ((r?.n ?? 0) >= 1) break;
      await new Promise((res) => setTimeout(res, 10));
    }
    clock.set(new Date("2026-11-16T00:00:40Z"));
    const canceled = await app.call("DELETE", `/v1/admin/orgs/${org.id}/subscription`, admin);
    expect(canceled.json.canceled_at, canceled.text).toBe("2026-11-16T00:00:40.000Z");
    await holder.release();
    const endedEarly = (await ended).status;
    clock.set(new Date("2026-12-01T00:00:05Z"));
    await closeCycles(app, org.id);
    const [month] = await db.sql<{ charged: bigint; credits: bigint }[]>`
      select (select sum(l.amount) from invoice_lines l join invoices i on i.id = l.invoice_id
              where i.org_id = ${org.id} and l.kind = 'subscription' and i.period_end <= '2026-12-01T00:00:00Z')::bigint as charged,
             (select sum(amount) from credit_grants where org_id = ${org.id} and source = 'plan'
              and expires_at = '2026-12-01T00:00:00Z')::bigint as credits`;
    expect({ endedEarly, ...month }).toEqual({ endedEarly: 409, charged: 200n * USD, credits: 250n * USD });
    await expectLedgerConsistent(db.sql);
  });
});
