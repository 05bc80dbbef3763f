import { describe, expect } from "vitest";
import { KeyCache } from "../../../../src/billing/api-keys.js";
import { createTestApp, TEST_ADMIN_KEY } from "../../../support/app.js";
import { appTest as it } from "../../../support/fixtures.js";

/** The key cache's own guarantees, with and without hearing of a revocation: test/http/key-revocation.test.ts. */
describe("DELETE /v1/admin/keys/{id} (revokeKey)", () => {
  it("a revoked key is refused from then on; revoking again answers the first revocation", async ({ app }) => {
    const org = await app.createOrg();
    const revoked = await app.call("POST", `/v1/admin/orgs/${org.id}/keys`, {
      key: TEST_ADMIN_KEY,
      body: { scope: "org" },
    });
    expect((await app.call("GET", "/v1/billing/balance", { key: revoked.json.key })).status).toBe(200);
    const del = await app.call("DELETE", `/v1/admin/keys/${revoked.json.id}`, { key: TEST_ADMIN_KEY });
    expect(del.status).toBe(200);
    expect(del.json.revoked).toBe(true);
    const again = await app.call("DELETE", `/v1/admin/keys/${revoked.json.id}`, { key: TEST_ADMIN_KEY });
    expect(again.json.revoked_at).toBe(del.json.revoked_at);
    const after = await app.call("GET", "/v1/billing/balance", { key: revoked.json.key });
    expect(after.status).toBe(401);
    expect(after.json.error.message).toMatch(/revoked/);
  });

  it("an unknown key is 404", async ({ app }) => {
    const res = await app.call("DELETE", "/v1/admin/keys/key_nope", { key: TEST_ADMIN_KEY });
    expect(res.status).toBe(404);
    expect(res.json.error.code).toBe("not_found");
  });

  it("with the key cache on (as the API process runs), a revocation still applies at once on this replica", async ({
    db,
  }) => {
    const cached = createTestApp({ sql: db.appSql, extra: { keyCache: new KeyCache() } });
    const org = await cached.createOrg();
    const key = await cached.call("POST", `/v1/admin/orgs/${org.id}/keys`, {
      key: TEST_ADMIN_KEY,
      body: { scope: "org" },
    });
    expect((await cached.call("GET", "/v1/billing/balance", { key: key.json.key })).status).toBe(200); // now cached
    await cached.call("DELETE", `/v1/admin/keys/${key.json.id}`, { key: TEST_ADMIN_KEY });
    expect((await cached.call("GET", "/v1/billing/balance", { key: key.json.key })).status).toBe(401);
  });
});
