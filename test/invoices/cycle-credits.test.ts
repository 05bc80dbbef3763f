import { describe, expect } from "vitest";
import { manualClock, TEST_ADMIN_KEY } from "../support/app.js";
import { loadPlanVersions } from "../support/catalog-versions.js";
import { appTest as it } from "../support/fixtures.js";
import { expectLedgerConsistent } from "../support/ledger.js";

// The metering path grants a cycle's included credits when the previous cycle's close has not run
// yet (src/billing/cycle-credits.ts). A subscription taken in the current cycle is not such a
// case: it got its plan's credits when it was taken, and a change it asks for waits for the next
// cycle, so metering grants nothing for it, even when the plan taken has no included credits
// (then no grant holds the month's key, and the pending plan's would have been granted at once).
describe("the metering path's included credits", () => {
  const clock = manualClock(new Date("2026-11-25T10:00:00Z"));
  it.scoped({ appOptions: { clock } });

  it("are not granted for a plan change pending in the cycle the subscription was taken in", async ({ app, db }) => {
    await loadPlanVersions(db.sql, [
      {
        effectiveAt: "2026-11-20T00:00:00Z",
        plans: (stock) => [...stock, { id: "starter", name: "Starter", monthly_price: "10.00", included_credits: "0" }],
      },
    ]);
    const org = await app.createOrg("Starter Co");
    await app.grant(org.id, "1.00");
    const put = (plan: string) =>
      app.call("PUT", `/v1/admin/orgs/${org.id}/subscription`, { key: TEST_ADMIN_KEY, body: { plan_id: plan } });
    expect((await put("starter")).status).toBe(200); // no included credits: no grant
    expect((await put("team")).json.pending_plan_id).toBe("team"); // from the next cycle
    const used = await app.call("POST", "/v1/billing/usage", {
      key: org.gatewayKey,
      body: {
        events: [
          {
            idempotency_key: "u1",
            org_id: org.id,
            timestamp: clock().toISOString(),
            product: "api",
            quantities: { requests: 1 },
          },
        ],
      },
    });
    expect(used.json.recorded, used.text).toBe(1);
    const [plan] = await db.sql<{ n: number }[]>`
      select count(*)::int as n from credit_grants where org_id = ${org.id} and source = 'plan'`;
    expect(plan?.n).toBe(0);
    // At the next cycle, before its close, metering grants Team's: the change has taken effect.
    clock.set(new Date("2026-12-01T00:00:05Z"));
    const later = await app.call("POST", "/v1/billing/authorize", {
      key: org.gatewayKey,
      body: { org_id: org.id, product: "api", estimate: { requests: 1 } },
    });
    expect(later.status, later.text).toBe(201);
    const grants = await db.sql<{ amount: string; expires_at: Date }[]>`
      select amount::text, expires_at from credit_grants where org_id = ${org.id} and source = 'plan'`;
    expect(grants).toEqual([{ amount: "250000000000", expires_at: new Date("2027-01-01T00:00:00Z") }]);
    await expectLedgerConsistent(db.sql);
  });
});
