/**
 * An early end is allowed only where the plan after it costs and includes at least what the
 * month's plan does on the terms its credits were granted on: otherwise the month keeps its whole
 * credits for part of the price. Catalog versions here add plans of their own (the stock plans stay
 * as they are, so the tests share one catalog): found by a helper's attack on the early close.
 */
import { describe, expect } from "vitest";
import { manualClock } from "../support/app.js";
import { loadPlanVersions } from "../support/catalog-versions.js";
import { appTest as it } from "../support/fixtures.js";
import { catalogPlan, closeCycles, subscribeTo } from "../support/plan-calls.js";
import { expectLedgerConsistent } from "../support/ledger.js";

const USD = 1_000_000_000n;
const clock = manualClock();

describe("an early close and the plan's terms", () => {
  it.scoped({ appOptions: { clock } });

  it.for([
    { story: "the plan's price halved from 15 Nov", plan: "halved", pending: null },
    { story: "the plan's credits cut from 15 Nov", plan: "cut", pending: null },
    { story: "a change to a plan with as much credit for less", plan: "full", pending: "lite" },
  ])("$story: the cycle cannot end early on 16 Nov, and November stays $200 with $250", async (s, { app, db }) => {
    const october = [catalogPlan("halved", "200.00", "250.00"), catalogPlan("cut", "200.00", "250.00")];
    const others = [catalogPlan("full", "200.00", "250.00"), catalogPlan("lite", "100.00", "250.00")];
    const middle = [catalogPlan("halved", "100.00", "125.00"), catalogPlan("cut", "200.00", "10.00")];
    await loadPlanVersions(db.sql, [
      { effectiveAt: "2026-10-01T00:00:00Z", plans: (stock) => [...stock, ...october, ...others] },
      { effectiveAt: "2026-11-15T00:00:00Z", plans: (stock) => [...stock, ...middle, ...others] },
    ]);
    clock.set(new Date("2026-11-01T00:00:00Z"));
    const org = await app.createOrg(s.story);
    expect((await subscribeTo(app, org.id, s.plan)).status).toBe(200);
    clock.set(new Date("2026-11-16T00:00:00Z"));
    if (s.pending) expect((await subscribeTo(app, org.id, s.pending)).json.pending_plan_id).toBe(s.pending);
    const ended = await closeCycles(app, org.id, true);
    expect(ended.status, ended.text).toBe(409);
    expect(ended.json.error.code).toBe("conflict");
    clock.set(new Date("2026-12-01T00:00:05Z"));
    await closeCycles(app, org.id);
    const [month] = await db.sql<{ charged: bigint; credits: bigint }[]>`
      select (select sum(l.amount) from invoice_lines l join invoices i on i.id = l.invoice_id
              where i.org_id = ${org.id} and l.kind = 'subscription' and i.period_end <= '2026-12-01T00:00:00Z')::bigint as charged,
             (select sum(amount) from credit_grants where org_id = ${org.id} and source = 'plan'
              and expires_at = '2026-12-01T00:00:00Z')::bigint as credits`;
    expect(month).toEqual({ charged: 200n * USD, credits: 250n * USD });
    await expectLedgerConsistent(db.sql);
  });
});
