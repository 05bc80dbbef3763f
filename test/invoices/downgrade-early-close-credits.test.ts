/**
 * A short cycle after an early close gets its plan's share of the month's included credits, "less
 * what the month's plan grants already gave" (README). A renewal downgrade ends the month's plan
 * grant early (endIncludedCredits): what was unused of it is taken back as a grant expiry
 * (`expired_amount`), so it gave only what was spent of it. Found by its expires_at, the ended grant
 * was not counted at all, and what was spent of it granted again (helper-87); counted at its full
 * amount, the month's credits were lost on a return to the plan (helper-89).
 *
 * Story: Team since October; October's $200 is never paid; $0 or $50 of November's $250 Team
 * credits used on 3 November; the renewal fails and on 8 November the org moves to Free (the unused
 * rest taken back); it stays on Free or asks for Team again (pending), and the operator ends the
 * cycle on 10 November. The short cycle [10 Nov, 1 Dec) gets its plan's share of the month (Free
 * 5 × 21/30 = $3.50, Team 250 × 21/30 = $175) less what November's Team grant gave.
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
const USD = 1_000_000_000n;

describe("renewal downgrade, then an early close in the same month", () => {
  it.scoped({ appOptions: { clock } });

  it.for([
    { plan: "free", usedUsd: 0n, grantedNano: 3_500_000_000n },
    { plan: "free", usedUsd: 50n, grantedNano: 0n },
    { plan: "team", usedUsd: 0n, grantedNano: 175n * USD },
    { plan: "team", usedUsd: 50n, grantedNano: 125n * USD },
  ])(
    "on $plan after the early close, $usedUsd USD of the ended Team grant used: the short cycle gets $grantedNano nano-USD",
    async ({ plan, usedUsd, grantedNano }, { app, db }) => {
      clock.set(new Date("2026-10-05T10:00:00Z"));
      const org = await app.createOrg(`downgraded, used ${usedUsd}, then ${plan}`);
      expect((await subscribeTo(app, org.id, "team")).status).toBe(200);
      // October closes with its $200 unpaid: an open invoice; November's $250 of Team credits granted.
      clock.set(new Date("2026-11-01T00:00:05Z"));
      await closeCycles(app, org.id);
      const [oct] = await db.sql<{ id: string; status: string; issued_at: Date }[]>`
        select id, status, issued_at from invoices where org_id = ${org.id}`;
      expect(oct?.status).toBe("open");
      if (usedUsd > 0n) {
        clock.set(new Date("2026-11-03T12:00:00Z"));
        const used = await app.call("POST", "/v1/billing/usage", {
          key: org.gatewayKey,
          body: {
            events: [
              {
                idempotency_key: "u1",
                org_id: org.id,
                timestamp: clock().toISOString(),
                product: "api",
                quantities: { requests: Number(usedUsd) * 10_000 }, // $0.0001 a request
              },
            ],
          },
        });
        expect(used.json.results[0], used.text).toMatchObject({ status: "recorded" });
      }
      // No card: the four attempts fail, the org moves to Free on 8 November; Team's November credits end.
      const processor = {} as Processor;
      const steps: string[] = [];
      for (const d of [0, 1, 3, 7, 7]) {
        const ctx = contextAt(db.sql, new Date((oct?.issued_at.getTime() ?? 0) + d * DAY));
        await ctx.catalog.refresh();
        steps.push(await collectRenewal(ctx, { invoiceId: oct?.id ?? "", processor }));
      }
      expect(steps.at(-1)).toBe("downgraded");
      const [ended] = await db.sql<{ consumed: bigint; expired_amount: bigint | null }[]>`
        select consumed, expired_amount from credit_grants
        where org_id = ${org.id} and source = 'plan' and created_at >= '2026-11-01T00:00:00Z'`;
      expect(ended).toEqual({ consumed: usedUsd * USD, expired_amount: (250n - usedUsd) * USD });
      if (plan === "team") {
        clock.set(new Date("2026-11-09T00:00:00Z"));
        expect((await subscribeTo(app, org.id, "team")).status).toBe(200); // back to Team, pending
      }
      clock.set(new Date("2026-11-10T00:00:00Z"));
      const closed = await closeCycles(app, org.id, true);
      expect(closed.status, closed.text).toBe(200);
      expect(closed.json.invoices_created).toBe(1);

      const grants = await db.sql<{ amount: bigint }[]>`
        select amount from credit_grants where org_id = ${org.id} and source = 'plan'
          and created_at >= '2026-11-09T00:00:00Z' and expires_at <= '2026-12-01T00:00:00Z'`;
      expect(grants.reduce((sum, g) => sum + g.amount, 0n)).toBe(grantedNano);
      await expectLedgerConsistent(db.sql);
    },
  );
});
