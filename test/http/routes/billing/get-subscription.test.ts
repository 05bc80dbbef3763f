import { describe, expect } from "vitest";
import { manualClock, TEST_ADMIN_KEY } from "../../../support/app.js";
import { appTest as it } from "../../../support/fixtures.js";

describe("GET /v1/billing/subscription (getSubscription)", () => {
  const clock = manualClock(new Date("2026-11-15T12:00:00Z"));
  it.scoped({ appOptions: { clock } });

  it("no subscription: plan null, and the current cycle", async ({ app }) => {
    const org = await app.createOrg();
    const res = await app.call("GET", "/v1/billing/subscription", { key: org.orgKey });
    expect(res.status).toBe(200);
    expect(res.json).toEqual({
      plan: null,
      pending_plan: null,
      started_at: null,
      canceled_at: null,
      period: { start: "2026-11-01T00:00:00.000Z", end: "2026-12-01T00:00:00.000Z" },
    });
  });

  it("the plan as priced by the catalog, a change pending for the next cycle, and a cancellation", async ({ app }) => {
    const org = await app.createOrg();
    const subscribe = (plan_id: string) =>
      app.call("PUT", `/v1/admin/orgs/${org.id}/subscription`, { key: TEST_ADMIN_KEY, body: { plan_id } });
    expect((await subscribe("pro")).status).toBe(200);
    const pro = await app.call("GET", "/v1/billing/subscription", { key: org.orgKey });
    expect(pro.status).toBe(200);
    expect(pro.json.plan).toEqual({
      id: "pro",
      name: "Pro",
      monthly_price: 20,
      monthly_price_usd: "20",
      monthly_price_nano_usd: "20000000000",
      included_credits: 20,
      included_credits_usd: "20",
      included_credits_nano_usd: "20000000000",
    });
    expect(pro.json.started_at).toBe("2026-11-15T12:00:00.000Z");
    expect(pro.json.pending_plan).toBeNull();

    expect((await subscribe("team")).status).toBe(200);
    const changing = await app.call("GET", "/v1/billing/subscription", { key: org.orgKey });
    expect(changing.json.plan.id).toBe("pro");
    expect(changing.json.pending_plan).toMatchObject({ id: "team", monthly_price_nano_usd: "200000000000" });

    expect((await app.call("DELETE", `/v1/admin/orgs/${org.id}/subscription`, { key: TEST_ADMIN_KEY })).status).toBe(
      200,
    );
    const canceled = await app.call("GET", "/v1/billing/subscription", { key: org.orgKey });
    // Canceled within this cycle: still charged for it, so the plan still shows, with the cancellation.
    expect(canceled.json.plan.id).toBe("pro");
    expect(canceled.json.canceled_at).toBe("2026-11-15T12:00:00.000Z");

    clock.set(new Date("2026-12-02T00:00:00Z"));
    const after = await app.call("GET", "/v1/billing/subscription", { key: org.orgKey });
    expect(after.json).toMatchObject({ plan: null, period: { start: "2026-12-01T00:00:00.000Z" } });
    clock.set(new Date("2026-11-15T12:00:00Z"));
  });

  it("needs an org key", async ({ app }) => {
    const org = await app.createOrg();
    expect((await app.call("GET", "/v1/billing/subscription", { key: org.gatewayKey })).status).toBe(403);
    expect((await app.call("GET", "/v1/billing/subscription")).status).toBe(401);
  });
});
