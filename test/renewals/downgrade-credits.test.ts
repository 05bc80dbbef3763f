/**
 * A renewal that failed its last attempt moves the org to the free plan at once, mid-cycle: the
 * cycle is then charged the free plan, so what is unused of the paid plan's included credits for
 * it ends with the move (a grant expiry), and only what was spent of them before stays spent.
 * Before, the org kept them and spent them in a cycle charged nothing (found by a helper's attack).
 */
import { describe, expect } from "vitest";
import type { Processor } from "../../src/billing/auto-topup/card-charge.js";
import { collectRenewal } from "../../src/billing/renewals/collect-renewal.js";
import { manualClock, TEST_ADMIN_KEY } from "../support/app.js";
import { contextAt } from "../support/context.js";
import { appTest as it } from "../support/fixtures.js";
import { expectLedgerConsistent } from "../support/ledger.js";

const clock = manualClock(new Date("2026-10-05T10:00:00Z"));
const DAY = 86_400_000;

describe("a renewal downgrade in the middle of a cycle", () => {
  it.scoped({ appOptions: { clock } });

  it("ends the unused part of the paid plan's credits for the cycle, which is charged the free plan", async ({
    app,
    db,
  }) => {
    const org = await app.createOrg("Downgraded Co");
    const put = await app.call("PUT", `/v1/admin/orgs/${org.id}/subscription`, {
      key: TEST_ADMIN_KEY,
      body: { plan_id: "team" },
    });
    expect(put.status).toBe(200);
    // October closes with its $200 unpaid (October's credits expired with it): an open invoice;
    // the close grants November's $250 of Team credits.
    clock.set(new Date("2026-11-01T00:00:05Z"));
    await app.call("POST", "/v1/admin/cycles/close", { key: TEST_ADMIN_KEY, body: { org_id: org.id } });
    const [oct] = await db.sql<{ id: string; status: string; issued_at: Date }[]>`
      select id, status, issued_at from invoices where org_id = ${org.id}`;
    expect(oct?.status).toBe("open");
    // $30 of November's Team credits spent before the move.
    clock.set(new Date("2026-11-03T10:00:00Z"));
    const usage = (key: string) => ({
      events: [
        {
          idempotency_key: key,
          org_id: org.id,
          timestamp: clock().toISOString(),
          product: "functions",
          quantities: { compute_seconds: 1_500_000 },
        },
      ],
    });
    const spent = await app.call("POST", "/v1/billing/usage", { key: org.gatewayKey, body: usage("before") });
    expect(spent.json.results[0].cost_nano_usd, spent.text).toBe("30000000000");
    // No card: attempts at issue, +1, +3 and +7 days fail, then the org moves to the free plan.
    const processor = {} as Processor; // never called: there is no card
    const steps: string[] = [];
    for (const d of [0, 1, 3, 7, 7, 8]) {
      const ctx = contextAt(db.sql, new Date((oct?.issued_at.getTime() ?? 0) + d * DAY));
      await ctx.catalog.refresh();
      steps.push(await collectRenewal(ctx, { invoiceId: oct?.id ?? "", processor }));
    }
    expect(steps.slice(-2)).toEqual(["downgraded", "already_downgraded"]);
    const [grant] = await db.sql<{ amount: string; consumed: string; expired_amount: string; expires_at: Date }[]>`
      select amount::text, consumed::text, expired_amount::text, expires_at from credit_grants
      where org_id = ${org.id} and source = 'plan' and reason like 'Team plan: included credits until 2026-12-01%'`;
    expect(grant).toEqual({
      amount: "250000000000",
      consumed: "30000000000",
      expired_amount: "220000000000",
      expires_at: new Date((oct?.issued_at.getTime() ?? 0) + 7 * DAY),
    });
    // November, charged the free plan, is closed; the org's credits are what it was given less
    // what it spent and what ended (250 - 30 - 220), and December's $5 of free-plan credits.
    clock.set(new Date("2026-12-01T00:00:05Z"));
    await app.call("POST", "/v1/admin/cycles/close", { key: TEST_ADMIN_KEY, body: { org_id: org.id } });
    const planLines = await db.sql<{ amount: string }[]>`
      select l.amount::text from invoice_lines l join invoices i on i.id = l.invoice_id
      where i.org_id = ${org.id} and i.period_start = '2026-11-01T00:00:00Z' and l.kind = 'subscription'`;
    expect(planLines).toEqual([{ amount: "0" }]);
    const balance = await app.call("GET", "/v1/billing/balance", { key: org.orgKey });
    expect(balance.json.balance_nano_usd).toBe("5000000000");
    await expectLedgerConsistent(db.sql);
  });
});
