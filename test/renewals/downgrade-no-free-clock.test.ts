/**
 * With no free plan in the catalog, the renewal downgrade cancels the paid plan. Dated by its own
 * clock, a worker a few seconds behind the boundary (or on time, at the boundary's very instant),
 * after the on-time close of November had granted December's Team credits, cancelled in November
 * or at December's first instant: December was never charged and kept its $250 of Team credits
 * (found by helper-79). Now dated as any change of plan (atOrgTime), with a cancel's first-instant
 * rule: December is charged, with its credits.
 */
import { describe, expect } from "vitest";
import type { Processor } from "../../src/billing/auto-topup/card-charge.js";
import { collectRenewal } from "../../src/billing/renewals/collect-renewal.js";
import { manualClock, TEST_ADMIN_KEY } from "../support/app.js";
import { loadPlanVersions } from "../support/catalog-versions.js";
import { contextAt } from "../support/context.js";
import { appTest as it } from "../support/fixtures.js";
import { expectLedgerConsistent } from "../support/ledger.js";

const clock = manualClock(new Date("2026-10-05T10:00:00Z"));
const DAY = 86_400_000;
const admin = { key: TEST_ADMIN_KEY };

describe("renewal downgrade without a free plan, on a clock behind the boundary", () => {
  it.scoped({ appOptions: { clock } });

  for (const [label, downgradeAt] of [
    ["a worker 10 s behind (23:59:55), 5 s after the on-time close", "2026-11-30T23:59:55Z"],
    ["a worker on time, at the boundary's very instant (no skew)", "2026-12-01T00:00:00Z"],
  ] as const)
    it(`charges December's Team plan, with its credits: ${label}`, async ({ app, db }) => {
      clock.set(new Date("2026-10-05T10:00:00Z"));
      // A catalog with no free plan (from before the story on).
      await loadPlanVersions(db.sql, [
        { effectiveAt: "2026-09-01T00:00:00Z", plans: (stock) => stock.filter((p) => p.id !== "free") },
      ]);
      const org = await app.createOrg(`no-free ${downgradeAt}`);
      const put = await app.call("PUT", `/v1/admin/orgs/${org.id}/subscription`, {
        ...admin,
        body: { plan_id: "team" },
      });
      expect(put.status, put.text).toBe(200);
      clock.set(new Date("2026-11-01T00:00:05Z"));
      await app.call("POST", "/v1/admin/cycles/close", { ...admin, body: { org_id: org.id } });
      const [oct] = await db.sql<{ id: string; status: string; issued_at: Date }[]>`
      select id, status, issued_at from invoices where org_id = ${org.id}`;
      expect(oct?.status).toBe("open");
      const processor = {} as Processor;
      const step = async (at: Date) => {
        const ctx = contextAt(db.sql, at);
        await ctx.catalog.refresh();
        return collectRenewal(ctx, { invoiceId: oct!.id, processor });
      };
      for (const d of [0, 1, 3, 7]) expect(await step(new Date(oct!.issued_at.getTime() + d * DAY))).toBe("failed");

      // The workers close November on time (December's Team credits granted with it)...
      clock.set(new Date("2026-12-01T00:00:00Z"));
      expect((await app.call("POST", "/v1/admin/cycles/close", { ...admin, body: { org_id: org.id } })).status).toBe(
        200,
      );
      // ...and 5 s later the renewal sweep, on a worker 10 s behind (23:59:55), ends the plan.
      expect(await step(new Date(downgradeAt))).toBe("downgraded");
      const [sub] = await db.sql<
        { canceled_at: Date }[]
      >`select canceled_at from subscriptions where org_id = ${org.id}`;
      expect(sub?.canceled_at.toISOString()).toBe("2026-12-01T00:00:00.001Z"); // December's first instant + 1 ms

      clock.set(new Date("2027-01-01T00:00:10Z"));
      expect((await app.call("POST", "/v1/admin/cycles/close", { ...admin, body: { org_id: org.id } })).status).toBe(
        200,
      );
      const dec = await db.sql<{ amount: string; description: string }[]>`
      select l.amount::text, l.description from invoice_lines l join invoices i on i.id = l.invoice_id
      where i.org_id = ${org.id} and i.period_start = '2026-12-01T00:00:00Z' and l.kind = 'subscription'`;
      const decCredits = await db.sql<{ amount: string; expired_amount: string | null; expires_at: Date }[]>`
      select amount::text, expired_amount::text, expires_at from credit_grants
      where org_id = ${org.id} and source = 'plan' and reason like '%until 2027-01-01%'`;
      await expectLedgerConsistent(db.sql);
      // December's credits come with December's charge: either Team is charged for December, or
      // December's Team credits end with the plan.
      const usable = decCredits.reduce((s, g) => s + BigInt(g.amount) - BigInt(g.expired_amount ?? 0), 0n);
      const charged = dec.reduce((s, l) => s + BigInt(l.amount), 0n);
      expect({ charged, usable }).toEqual({ charged: 200_000_000_000n, usable: 250_000_000_000n });
    });
});
