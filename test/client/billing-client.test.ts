import { describe, expect } from "vitest";
import { createBillingClient } from "../../client/index.js";
import { TEST_ADMIN_KEY, type TestApp } from "../support/app.js";
import { appTest as it } from "../support/fixtures.js";

// The typed client (client/) against the real app: the calls npm run demo makes, minus the chain,
// go over openapi-fetch's own request building (paths, query, headers, bodies) and come back typed.

/** A client whose requests go to the in-process app. */
const clientOf = (t: TestApp) => (key?: string) =>
  createBillingClient("http://billing.test", key, { fetch: async (req) => t.app.fetch(req) });

describe("createBillingClient", () => {
  it("runs the demo's flow: grant, authorize, usage, the usage report, a cycle closed, its invoice", async ({
    app,
  }) => {
    const client = clientOf(app);
    const admin = client(TEST_ADMIN_KEY);
    const org = await admin.POST("/v1/admin/orgs", { body: { name: "Client Co" } });
    if (!org.data) throw new Error(JSON.stringify(org.error));
    const orgId = org.data.id;
    const orgKey = await admin.POST("/v1/admin/orgs/{id}/keys", {
      params: { path: { id: orgId } },
      body: { scope: "org" },
    });
    if (!orgKey.data) throw new Error(JSON.stringify(orgKey.error));
    // Gateway keys are platform credentials: made without an organization.
    const gatewayKey = await admin.POST("/v1/admin/keys", { body: { scope: "gateway", name: "client gateway" } });
    if (!gatewayKey.data) throw new Error(JSON.stringify(gatewayKey.error));
    const orgApi = client(orgKey.data.key);
    const gateway = client(gatewayKey.data.key);

    const grant = await admin.POST("/v1/admin/orgs/{id}/credits", {
      params: { path: { id: orgId }, header: { "idempotency-key": "client-test-grant" } },
      body: { amount: "50.00", reason: "client test" },
    });
    expect(grant.response.status).toBe(201);
    expect((await orgApi.GET("/v1/billing/balance")).data?.balance_nano_usd).toBe("50000000000");

    const hold = await gateway.POST("/v1/billing/authorize", {
      body: { org_id: orgId, product: "llm", model: "zen-pro", estimate: { input_tokens: 2000, output_tokens: 1000 } },
    });
    expect(hold.response.status).toBe(201);
    const holdId = hold.data?.hold_id ?? "";
    expect(holdId).toMatch(/^hold_/);
    const used = await gateway.POST("/v1/billing/usage", {
      body: {
        events: [
          {
            idempotency_key: "client-test-1",
            org_id: orgId,
            timestamp: new Date().toISOString(),
            product: "llm",
            model: "zen-pro",
            quantities: { input_tokens: 1800, output_tokens: 700 },
            hold_id: holdId,
          },
        ],
      },
    });
    expect(used.data?.results[0]).toMatchObject({ status: "recorded", hold_outcome: "released" });

    const refused = await gateway.POST("/v1/billing/authorize", {
      body: { org_id: orgId, product: "llm", model: "zen-max", estimate: { input_tokens: 100_000_000 } },
    });
    expect(refused.response.status).toBe(402);
    expect(refused.data).toBeUndefined();
    expect(refused.error?.error.code).toBe("insufficient_balance");

    const usage = await orgApi.GET("/v1/billing/usage", { params: { query: { period: "current" } } });
    expect(usage.data?.products.map((p) => p.product)).toEqual(["llm"]);

    const closed = await admin.POST("/v1/admin/cycles/close", { body: { org_id: orgId, end_current_cycle_now: true } });
    expect(closed.data?.invoices_created).toBe(1);
    const page = await orgApi.GET("/v1/billing/invoices", { params: { query: { limit: 1 } } });
    const latest = page.data?.data[0];
    expect(latest).toBeDefined();
    const invoice = await orgApi.GET("/v1/billing/invoices/{id}", { params: { path: { id: latest?.id ?? "" } } });
    expect(invoice.data?.id).toBe(latest?.id);
    expect(invoice.data?.lines?.length).toBeGreaterThan(0);
  });

  it("answers a missing key with the error envelope, typed", async ({ app }) => {
    const anonymous = clientOf(app)();
    const res = await anonymous.GET("/v1/billing/balance");
    expect(res.response.status).toBe(401);
    expect(res.error?.error).toMatchObject({ type: expect.any(String), code: expect.any(String) });
  });
});
