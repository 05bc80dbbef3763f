import { describe, expect } from "vitest";
import { TEST_ADMIN_KEY } from "../../../support/app.js";
import { appTest as it } from "../../../support/fixtures.js";

describe("POST /v1/admin/orgs/{id}/keys (createKey)", () => {
  it("shows a key once, storing only its hash", async ({ app, db }) => {
    const org = await app.call("POST", "/v1/admin/orgs", { key: TEST_ADMIN_KEY, body: { name: "Acme AI" } });
    const key = await app.call("POST", `/v1/admin/orgs/${org.json.id}/keys`, {
      key: TEST_ADMIN_KEY,
      body: { scope: "org" },
    });
    expect(key.status).toBe(201);
    expect(key.json.key).toMatch(/^hk-[A-Za-z0-9]{40}$/);
    const rows = await db.sql`select key_hash, key_prefix from api_keys where id = ${key.json.id}`;
    expect(rows[0]!.key_hash).toHaveLength(32);
    expect(JSON.stringify(await db.sql`select * from api_keys`)).not.toContain(key.json.key);
    expect(key.json.key.startsWith(rows[0]!.key_prefix)).toBe(true);

    const balance = await app.call("GET", "/v1/billing/balance", { key: key.json.key });
    expect(balance.status).toBe(200);
  });

  it("an admin key created through the API works like the bootstrap key", async ({ app }) => {
    const org = await app.createOrg("Ops");
    const admin = await app.call("POST", `/v1/admin/orgs/${org.id}/keys`, {
      key: TEST_ADMIN_KEY,
      body: { scope: "admin" },
    });
    const created = await app.call("POST", "/v1/admin/orgs", { key: admin.json.key, body: { name: "Made by ops" } });
    expect(created.status).toBe(201);
  });

  it("keys for an unknown organization are 404", async ({ app }) => {
    const res = await app.call("POST", "/v1/admin/orgs/org_nope/keys", { key: TEST_ADMIN_KEY, body: { scope: "org" } });
    expect(res.status).toBe(404);
    expect(res.json.error.code).toBe("not_found");
  });
});
