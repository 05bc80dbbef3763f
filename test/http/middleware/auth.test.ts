import { describe, expect } from "vitest";
import { TEST_ADMIN_KEY } from "../../support/app.js";
import { appTest as it } from "../../support/fixtures.js";

type Org = { orgKey: string; gatewayKey: string };

/** Authentication as every secured route applies it (src/http/middleware/auth.ts); per route: test/http/every-endpoint.test.ts. */
describe("API key authentication", () => {
  it.for<[string, string | null, Record<string, string>]>([
    ["no Authorization header", null, {}],
    ["Basic instead of Bearer", null, { authorization: "Basic abc" }],
    ["Bearer without a key", null, { authorization: "Bearer" }],
    ["a key without the hk- prefix", "not-a-key", {}],
    ["a key too short", "hk-short", {}],
    ["a well-formed key that does not exist", "hk-thisIsAWellFormedKeyThatDoesNotExist000", {}],
  ])("401 for %s, in the envelope with the request id", async ([, key, headers], { app }) => {
    const res = await app.call("GET", "/v1/billing/balance", { key, headers });
    expect(res.status).toBe(401);
    expect(res.json.error.type).toBe("authentication_error");
    expect(["missing_api_key", "invalid_api_key"]).toContain(res.json.error.code);
    expect(res.json.error.request_id).toBe(res.headers.get("x-request-id"));
  });

  it.for<[string, string, string, (org: Org) => string]>([
    ["a gateway key on an org route", "GET", "/v1/billing/balance", (org) => org.gatewayKey],
    ["an admin key on an org route", "GET", "/v1/billing/balance", () => TEST_ADMIN_KEY],
    ["an org key on an admin route", "POST", "/v1/admin/orgs", (org) => org.orgKey],
  ])("403 insufficient_scope for %s", async ([, method, path, key], { app }) => {
    const org = await app.createOrg();
    const res = await app.call(method, path, { key: key(org), ...(method === "POST" ? { body: { name: "x" } } : {}) });
    expect(res.status).toBe(403);
    expect(res.json.error.code).toBe("insufficient_scope");
  });
});
