/**
 * The early-end refusal compared the plan's terms at the month's start with those at the early end
 * only. A plan the org moved to at an earlier early close was credited (and its short cycle priced)
 * on the terms at that early end; with the terms at a later instant back to the month start's, a
 * second early end passed, and the rest of the month was charged at the low price while the
 * credits granted on the high terms stayed (found by helper-75). Any version within the month whose
 * terms differ now refuses it.
 */
import { describe, expect } from "vitest";
import { manualClock, TEST_ADMIN_KEY } from "../support/app.js";
import { loadPlanVersions } from "../support/catalog-versions.js";
import { appTest as it } from "../support/fixtures.js";
import { catalogPlan, closeCycles, subscribeTo } from "../support/plan-calls.js";
import { expectLedgerConsistent } from "../support/ledger.js";

const USD = 1_000_000_000n;
const admin = { key: TEST_ADMIN_KEY };
const clock = manualClock();

describe("a second early close after an upgrade at an early close, the new plan's terms back to the month start's", () => {
  it.scoped({ appOptions: { clock } });

  it("Pro from 18 Nov (anchor 18), Peak ($300 with $400 from 20 Nov, $100 with $100 before and from 5 Dec) at an early end on 21 Nov, then an early end on 6 Dec is refused", async ({
    app,
    db,
  }) => {
    await loadPlanVersions(db.sql, [
      { effectiveAt: "2026-10-01T00:00:00Z", plans: (stock) => [...stock, catalogPlan("peak", "100.00", "100.00")] },
      { effectiveAt: "2026-11-20T00:00:00Z", plans: (stock) => [...stock, catalogPlan("peak", "300.00", "400.00")] },
      { effectiveAt: "2026-12-05T00:00:00Z", plans: (stock) => [...stock, catalogPlan("peak", "100.00", "100.00")] },
    ]);
    clock.set(new Date("2026-11-18T00:00:00Z"));
    const created = await app.call("POST", "/v1/admin/orgs", {
      ...admin,
      body: { name: "peak", billing_anchor_day: 18 },
    });
    const orgId = created.json.id as string;
    expect((await subscribeTo(app, orgId, "pro")).status).toBe(200); // $20 of credits, month 18 Nov - 18 Dec (30 days)
    clock.set(new Date("2026-11-21T00:00:00Z"));
    expect((await subscribeTo(app, orgId, "peak")).json.pending_plan_id).toBe("peak");
    const first = await closeCycles(app, orgId, true); // an upgrade: allowed
    expect(first.json.invoices_created, first.text).toBe(1);
    // Peak's share of the month for 21 Nov - 18 Dec on the 21 Nov terms: $400 x 27/30 - $20 = $340.
    clock.set(new Date("2026-12-06T00:00:00Z"));
    const second = await closeCycles(app, orgId, true);
    clock.set(new Date("2026-12-18T00:00:05Z"));
    await closeCycles(app, orgId);
    const [month] = await db.sql<{ charged: bigint; credits: bigint }[]>`
      select (select sum(l.amount) from invoice_lines l join invoices i on i.id = l.invoice_id
              where i.org_id = ${orgId} and l.kind = 'subscription' and i.period_end <= '2026-12-18T00:00:00Z')::bigint as charged,
             (select sum(amount) from credit_grants where org_id = ${orgId} and source = 'plan'
              and expires_at = '2026-12-18T00:00:00Z')::bigint as credits`;
    // Without the second early end: Pro's $2 (3 days) + Peak's $300 x 27/30 = $272, for $360 of credits.
    // The second early end must be refused (Peak's terms changed within the month), or at least change nothing.
    expect({ second: second.status, ...month }).toEqual({ second: 409, charged: 272n * USD, credits: 360n * USD });
    await expectLedgerConsistent(db.sql);
  });

  it("no upgrade: a first subscription to Peak in the short cycle after an early end on 21 Nov, then an early end on 6 Dec is refused", async ({
    app,
    db,
  }) => {
    await loadPlanVersions(db.sql, [
      { effectiveAt: "2026-10-01T00:00:00Z", plans: (stock) => [...stock, catalogPlan("peak", "100.00", "100.00")] },
      { effectiveAt: "2026-11-20T00:00:00Z", plans: (stock) => [...stock, catalogPlan("peak", "300.00", "400.00")] },
      { effectiveAt: "2026-12-05T00:00:00Z", plans: (stock) => [...stock, catalogPlan("peak", "100.00", "100.00")] },
    ]);
    clock.set(new Date("2026-11-18T00:00:00Z"));
    const created = await app.call("POST", "/v1/admin/orgs", {
      ...admin,
      body: { name: "peak 2", billing_anchor_day: 18 },
    });
    const orgId = created.json.id as string;
    clock.set(new Date("2026-11-21T00:00:00Z"));
    expect((await closeCycles(app, orgId, true)).json.invoices_created).toBe(1); // 18-21 Nov, no plan
    clock.set(new Date("2026-11-22T00:00:00Z"));
    expect((await subscribeTo(app, orgId, "peak")).status).toBe(200); // the short cycle from 21 Nov: $400 x 27/30 = $360
    clock.set(new Date("2026-12-06T00:00:00Z"));
    const second = await closeCycles(app, orgId, true);
    clock.set(new Date("2026-12-18T00:00:05Z"));
    await closeCycles(app, orgId);
    const [month] = await db.sql<{ charged: bigint; credits: bigint }[]>`
      select (select sum(l.amount) from invoice_lines l join invoices i on i.id = l.invoice_id
              where i.org_id = ${orgId} and l.kind = 'subscription' and i.period_end <= '2026-12-18T00:00:00Z')::bigint as charged,
             (select sum(amount) from credit_grants where org_id = ${orgId} and source = 'plan'
              and expires_at = '2026-12-18T00:00:00Z')::bigint as credits`;
    // Without the second early end: $300 x 27/30 = $270 for $360 of credits.
    expect({ second: second.status, ...month }).toEqual({ second: 409, charged: 270n * USD, credits: 360n * USD });
    await expectLedgerConsistent(db.sql);
  });
});
