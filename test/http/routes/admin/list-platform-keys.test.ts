import { describe, expect } from "vitest";
import { TEST_ADMIN_KEY } from "../../../support/app.js";
import { appTest as it } from "../../../support/fixtures.js";

describe("GET /v1/admin/keys (listPlatformKeys)", () => {
  it("lists gateway keys (never a secret, never an org's key); an operator's revocation shows and holds", async ({
    app,
  }) => {
    const org = await app.createOrg(); // also makes a gateway key
    const made = await app.call("POST", "/v1/admin/keys", {
      key: TEST_ADMIN_KEY,
      body: { scope: "gateway", name: "to revoke" },
    });
    const list = await app.call("GET", "/v1/admin/keys", { key: TEST_ADMIN_KEY });
    expect(list.status).toBe(200);
    expect(list.text).not.toContain(made.json.key);
    expect(list.text).not.toContain(org.gatewayKey);
    expect(
      list.json.data.every((k: { scope: string; org_id: null }) => k.scope === "gateway" && k.org_id === null),
    ).toBe(true);
    expect(list.json.data.map((k: { id: string }) => k.id)).not.toContain(org.orgKeyId);
    const listed = list.json.data.find((k: { id: string }) => k.id === made.json.id);
    expect(listed).toMatchObject({ name: "to revoke", prefix: made.json.prefix, revoked_at: null, last_used_at: null });

    expect((await app.call("DELETE", `/v1/admin/keys/${made.json.id}`, { key: TEST_ADMIN_KEY })).status).toBe(200);
    const after = await app.call("GET", "/v1/admin/keys", { key: TEST_ADMIN_KEY });
    expect(after.json.data.find((k: { id: string }) => k.id === made.json.id).revoked_at).toEqual(expect.any(String));
    const use = await app.call("POST", "/v1/billing/authorize", {
      key: made.json.key,
      body: { org_id: org.id, product: "llm", model: "zen-pro", estimate: { input_tokens: 10 } },
    });
    expect(use.status).toBe(401);
  });

  it("lists every admin key, made under whichever organization, so a key minted with a stolen admin key can be found and revoked", async ({
    app,
  }) => {
    const org = await app.createOrg("Victim Co");
    const minted = await app.call("POST", `/v1/admin/orgs/${org.id}/keys`, {
      key: TEST_ADMIN_KEY,
      body: { scope: "admin", name: "innocuous" },
    });
    expect(minted.status, minted.text).toBe(201);
    const list = await app.call("GET", "/v1/admin/keys", { key: minted.json.key });
    expect(list.text).not.toContain(minted.json.key);
    expect(list.json.data.find((k: { id: string }) => k.id === minted.json.id)).toMatchObject({
      scope: "admin",
      org_id: org.id,
      name: "innocuous",
      revoked_at: null,
    });
    // Org keys stay on the organization's own list.
    expect(list.json.data.map((k: { id: string }) => k.id)).not.toContain(org.orgKeyId);
    expect((await app.call("DELETE", `/v1/admin/keys/${minted.json.id}`, { key: TEST_ADMIN_KEY })).status).toBe(200);
    expect((await app.call("GET", `/v1/admin/orgs/${org.id}`, { key: minted.json.key })).status).toBe(401);
  });

  it("org and gateway keys get 403", async ({ app }) => {
    const org = await app.createOrg();
    for (const key of [org.orgKey, org.gatewayKey])
      expect((await app.call("GET", "/v1/admin/keys", { key })).status).toBe(403);
  });
});
