/**
 * A renewal downgrade ends the month's plan grant early (endIncludedCredits moves its expires_at to
 * the downgrade); a short cycle after an early close in that month must still count it among "what
 * the month's plan grants already gave". Found by its expires_at, it was not, and the month's plan
 * credits were granted a second time (helper-87).
 */
import { describe, expect } from "vitest";
import type { Processor } from "../../src/billing/auto-topup/card-charge.js";
import { collectRenewal } from "../../src/billing/renewals/collect-renewal.js";
import { manualClock } from "../support/app.js";
import { contextAt } from "../support/context.js";
import { appTest as it } from "../support/fixtures.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import { closeCycles, subscribeTo } from "../support/plan-calls.js";

const clock = manualClock(new Date("2026-10-05T10:00:00Z"));
const DAY = 86_400_000;

describe("renewal downgrade, then an early close in the same month", () => {
  it.scoped({ appOptions: { clock } });

  it.for(["free", "team"])(
    "the short cycle after the early close (then on %s) gets no second grant of the month's plan credits",
    async (after, { app, db }) => {
      clock.set(new Date("2026-10-05T10:00:00Z"));
      const org = await app.createOrg(`Downgraded then closed early (${after})`);
      expect((await subscribeTo(app, org.id, "team")).status).toBe(200);
      // October closes with its $200 unpaid: an open invoice; November's $250 of Team credits granted.
      clock.set(new Date("2026-11-01T00:00:05Z"));
      await closeCycles(app, org.id);
      const [oct] = await db.sql<{ id: string; status: string; issued_at: Date }[]>`
        select id, status, issued_at from invoices where org_id = ${org.id}`;
      expect(oct?.status).toBe("open");
      // No card: the four attempts fail, the org moves to Free on 8 November; Team's November credits end.
      const processor = {} as Processor;
      const steps: string[] = [];
      for (const d of [0, 1, 3, 7, 7]) {
        const ctx = contextAt(db.sql, new Date((oct?.issued_at.getTime() ?? 0) + d * DAY));
        await ctx.catalog.refresh();
        steps.push(await collectRenewal(ctx, { invoiceId: oct?.id ?? "", processor }));
      }
      expect(steps.at(-1)).toBe("downgraded");
      if (after === "team") expect((await subscribeTo(app, org.id, "team")).status).toBe(200); // back to Team, pending
      // An operator ends the running cycle on 10 November.
      clock.set(new Date("2026-11-10T00:00:00Z"));
      const closed = await closeCycles(app, org.id, true);
      expect(closed.status, closed.text).toBe(200);
      expect(closed.json.invoices_created).toBe(1);

      const grants = await db.sql<{ amount: bigint; created_at: Date; expires_at: Date; reason: string }[]>`
        select amount, created_at, expires_at, reason from credit_grants
        where org_id = ${org.id} and source = 'plan' and created_at >= '2026-11-01T00:00:00Z' and created_at < '2026-12-01T00:00:00Z'
        order by created_at`;
      const novemberGrants = grants.map((g) => ({ amount: g.amount.toString(), reason: g.reason }));
      // November's plan credits were granted once, on 1 November ($250 of Team); a short cycle's
      // grant is "its plan's share of the month, less what the month's plan grants already gave":
      // Free's share 5 × 21/30 = $3.50 (Team's 250 × 21/30 = $175), less $250, is nothing.
      expect(novemberGrants).toEqual([
        { amount: "250000000000", reason: "Team plan: included credits until 2026-12-01" },
      ]);
      await expectLedgerConsistent(db.sql);
    },
  );
});
