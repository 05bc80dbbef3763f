import { describe, expect } from "vitest";
import { TEST_ADMIN_KEY } from "../../../support/app.js";
import { appTest as it } from "../../../support/fixtures.js";

describe("POST /v1/admin/keys (createPlatformKey)", () => {
  it("makes a gateway key of no organization that acts for whichever one the request names", async ({ app, db }) => {
    const res = await app.call("POST", "/v1/admin/keys", {
      key: TEST_ADMIN_KEY,
      body: { scope: "gateway", name: "gateway eu-west" },
    });
    expect(res.status).toBe(201);
    expect(res.json).toMatchObject({ org_id: null, scope: "gateway", name: "gateway eu-west", permissions: [] });
    expect(res.json.key).toMatch(/^hk-[A-Za-z0-9]{40}$/);
    const [row] = await db.sql`select org_id, scope from api_keys where id = ${res.json.id}`;
    expect(row).toEqual({ org_id: null, scope: "gateway" });

    const a = await app.createOrg("A");
    const b = await app.createOrg("B");
    await app.grant(a.id, "1");
    await app.grant(b.id, "1");
    for (const org of [a, b]) {
      const auth = await app.call("POST", "/v1/billing/authorize", {
        key: res.json.key,
        body: { org_id: org.id, product: "llm", model: "zen-pro", estimate: { input_tokens: 10 } },
      });
      expect(auth.status, auth.text).toBeLessThan(300);
    }
    // Not an org key: the org routes refuse it.
    expect((await app.call("GET", "/v1/billing/balance", { key: res.json.key })).status).toBe(403);
    expect((await app.call("GET", "/v1/billing/keys", { key: res.json.key })).status).toBe(403);
  });

  it("the organization route no longer makes gateway keys: 400 naming the platform route", async ({ app, db }) => {
    const org = await app.createOrg();
    const res = await app.call("POST", `/v1/admin/orgs/${org.id}/keys`, {
      key: TEST_ADMIN_KEY,
      body: { scope: "gateway" },
    });
    expect(res.status).toBe(400);
    expect(res.json.error).toMatchObject({ code: "invalid_request", param: "scope" });
    expect(res.json.error.message).toContain("POST /v1/admin/keys");
    const [n] = await db.sql`select count(*)::int as n from api_keys where org_id = ${org.id} and scope = 'gateway'`;
    expect(n!.n).toBe(0);
  });

  it("only an admin key makes one: org and gateway keys get 403", async ({ app }) => {
    const org = await app.createOrg();
    for (const key of [org.orgKey, org.gatewayKey]) {
      const res = await app.call("POST", "/v1/admin/keys", { key, body: { scope: "gateway", name: "mine" } });
      expect(res.status).toBe(403);
      expect(res.json.error.code).toBe("insufficient_scope");
    }
  });

  it.for([
    ["no body fields", {}],
    ["no name", { scope: "gateway" }],
    ["an org scope", { scope: "org", name: "x" }],
    ["an admin scope", { scope: "admin", name: "x" }],
    ["an empty name", { scope: "gateway", name: "" }],
    ["a name too long", { scope: "gateway", name: "x".repeat(101) }],
    ["a control character", { scope: "gateway", name: "a\u0000b" }],
    ["a number name", { scope: "gateway", name: 7 }],
  ] as const)("%s → 400 in the envelope", async ([, body], { app }) => {
    const res = await app.call("POST", "/v1/admin/keys", { key: TEST_ADMIN_KEY, body });
    expect(res.status).toBe(400);
    expect(res.json.error).toMatchObject({ type: "invalid_request_error", code: "invalid_request" });
    expect(res.json.error.request_id).toEqual(expect.any(String));
  });
});
