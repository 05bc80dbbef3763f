/**
 * An early close pays the plan's share from the org's credits, "not from included credits that
 * outlive the cycle". The spendable credits are already net of live holds, and a hold's charge
 * draws on the grants that expire soonest, here the month's plan grant: counting that grant in full
 * took the held part off twice, and left an open invoice the org's paid credits covered (helper-87).
 */
import { describe, expect } from "vitest";
import { manualClock } from "../support/app.js";
import { appTest as it } from "../support/fixtures.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import { closeCycles, subscribeTo } from "../support/plan-calls.js";

const clock = manualClock(new Date("2026-11-01T00:00:00Z"));

describe("an early close while a hold on the month's plan credits is live", () => {
  it.scoped({ appOptions: { clock } });

  it.for(["0", "250"])(
    "a hold of %s USD: the 60 USD share is paid from the 100 USD of paid credits",
    async (held, { app, db }) => {
      const holdUsd = Number(held);
      clock.set(new Date("2026-11-01T00:00:00Z"));
      const org = await app.createOrg(`Held ${holdUsd}`);
      expect((await subscribeTo(app, org.id, "team")).status).toBe(200); // November: $250 of Team credits
      await app.grant(org.id, "100.00"); // $100 that never expires
      if (holdUsd > 0) {
        clock.set(new Date("2026-11-09T23:59:00Z"));
        const hold = await app.call("POST", "/v1/billing/authorize", {
          key: org.gatewayKey,
          body: { org_id: org.id, product: "api", estimate: { requests: holdUsd * 10_000 }, ttl_seconds: 300 },
        });
        expect(hold.status, hold.text).toBe(201);
      }
      // The operator ends November's cycle on the 10th: Team's share, 200 × 9/30 = $60.
      clock.set(new Date("2026-11-10T00:00:00Z"));
      const closed = await closeCycles(app, org.id, true);
      expect(closed.json.invoices_created, closed.text).toBe(1);
      const [inv] = await db.sql<{ subtotal: string; amount_due: string; status: string }[]>`
      select subtotal::text, amount_due::text, status from invoices where org_id = ${org.id}`;
      const balance = (await app.call("GET", "/v1/billing/balance", { key: org.orgKey })).json;
      // Spending draws on the Team grant (expiring soonest) before the $100: the hold is the
      // month's credits' to pay, and the $100 pays the $60.
      expect(inv).toEqual({ subtotal: "60000000000", amount_due: "0", status: "paid" });
      // $250 + $100 - $60, less what the hold reserves.
      expect(BigInt(balance.credits_nano_usd)).toBe(290_000_000_000n - BigInt(holdUsd) * 1_000_000_000n);
      await expectLedgerConsistent(db.sql);
    },
  );
});
