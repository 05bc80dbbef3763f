import { TEST_ADMIN_KEY, type TestApp } from "./app.js";

/** The admin API's plan and cycle calls, as the invoice tests make them. */
const admin = { key: TEST_ADMIN_KEY };

export const subscribeTo = (app: TestApp, orgId: string, plan: string) =>
  app.call("PUT", `/v1/admin/orgs/${orgId}/subscription`, { ...admin, body: { plan_id: plan } });

export const cancel = (app: TestApp, orgId: string) =>
  app.call("DELETE", `/v1/admin/orgs/${orgId}/subscription`, admin);

/** Closes the org's due cycles; `endNow` ends its running cycle early too. */
export const closeCycles = (app: TestApp, orgId: string, endNow = false) =>
  app.call("POST", "/v1/admin/cycles/close", {
    ...admin,
    body: { org_id: orgId, ...(endNow ? { end_current_cycle_now: true } : {}) },
  });

/** A catalog plan named by its id, for loadPlanVersions (test/support/catalog-versions.ts). */
export const catalogPlan = (id: string, price: string, credits: string) => ({
  id,
  name: id,
  monthly_price: price,
  included_credits: credits,
});
