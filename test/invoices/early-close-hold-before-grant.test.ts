/**
 * A close counts what live holds will draw from the later plan credits only where the draw is sure:
 * on grants live when the hold was taken. A hold taken before the month's plan grant, settled after
 * that grant expired, draws nothing from it; counted as drawing on it (2bb8c35), the close paid the
 * plan's share "from the paid credits" all held, and the org's credits ended below zero (helper-89).
 *
 * Story: $300 of paid credits; a $300 hold (24 h) at 22:00 on 30 Nov; Team taken at 23:00 (its
 * November grant, $250, expiring 1 Dec); the operator ends the cycle at 23:30, and the subscription
 * is cancelled at 23:45 (December has no plan credits). Every paid dollar is held, so the plan's
 * share ($199.86) could only be paid from November's included credits, which outlive the early
 * closed cycle: it is left due. The hold settles at 00:30 on 1 Dec and the $250 expire unused.
 */
import { describe, expect } from "vitest";
import { expireGrants } from "../../src/billing/grants.js";
import { manualClock } from "../support/app.js";
import { contextAt } from "../support/context.js";
import { appTest as it } from "../support/fixtures.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import { cancel, closeCycles, subscribeTo } from "../support/plan-calls.js";

const clock = manualClock(new Date("2026-11-30T20:00:00Z"));
const SHARE = 199_861_111_111n; // 200 × 719.5 h / 720 h, half even

describe("an early close while a hold taken before the month's plan grant is live", () => {
  it.scoped({ appOptions: { clock } });

  it("does not pay the plan's share from included credits the hold cannot draw once they expired", async ({
    app,
    db,
  }) => {
    clock.set(new Date("2026-11-30T20:00:00Z"));
    const org = await app.createOrg("hold before grant");
    await app.grant(org.id, "300.00"); // paid, never expires
    clock.set(new Date("2026-11-30T22:00:00Z"));
    const hold = await app.call("POST", "/v1/billing/authorize", {
      key: org.gatewayKey,
      body: { org_id: org.id, product: "api", estimate: { requests: 3_000_000 }, ttl_seconds: 86_400 },
    });
    expect(hold.status, hold.text).toBe(201);
    clock.set(new Date("2026-11-30T23:00:00Z"));
    expect((await subscribeTo(app, org.id, "team")).status).toBe(200); // $250 until 1 Dec
    clock.set(new Date("2026-11-30T23:30:00Z"));
    const closed = await closeCycles(app, org.id, true);
    expect(closed.json.invoices_created, closed.text).toBe(1);
    const [inv] = await db.sql<{ subtotal: string; amount_due: string; status: string }[]>`
      select subtotal::text, amount_due::text, status from invoices where org_id = ${org.id}`;
    clock.set(new Date("2026-11-30T23:45:00Z"));
    expect((await cancel(app, org.id)).status).toBe(200);
    // The short cycle [23:30, 1 Dec) closes at the boundary: Team's share of 30 minutes, $0.14, left due.
    clock.set(new Date("2026-12-01T00:00:05Z"));
    expect((await closeCycles(app, org.id)).json.invoices_created).toBe(1);
    const [dec] = await db.sql<{ amount_due: string }[]>`
      select amount_due::text from invoices where org_id = ${org.id} and period_start = '2026-11-30T23:30:00Z'`;

    // The hold's $300 is settled after November's credits ended, then the workers post the expiry.
    clock.set(new Date("2026-12-01T00:30:00Z"));
    const used = await app.call("POST", "/v1/billing/usage", {
      key: org.gatewayKey,
      body: {
        events: [
          {
            idempotency_key: "settle",
            org_id: org.id,
            timestamp: clock().toISOString(),
            product: "api",
            quantities: { requests: 3_000_000 },
            hold_id: hold.json.hold_id,
          },
        ],
      },
    });
    expect(used.json.results[0], used.text).toMatchObject({ status: "recorded" });
    await expireGrants(contextAt(db.sql, clock()));
    const balance = (await app.call("GET", "/v1/billing/balance", { key: org.orgKey })).json;
    await expectLedgerConsistent(db.sql);
    const outcome = { invoice: inv, credits: BigInt(balance.credits_nano_usd) };
    expect(dec?.amount_due).toBe("138888889");
    // Expected: the share left due, and the org's authorized usage never takes its credits below 0.
    expect(outcome).toEqual({
      invoice: { subtotal: SHARE.toString(), amount_due: SHARE.toString(), status: "open" },
      credits: 0n,
    });
  });
});
