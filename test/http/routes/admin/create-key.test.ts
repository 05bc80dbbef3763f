import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApp, TEST_ADMIN_KEY, type TestApp } from "../../../support/app.js";
import { createTestDatabase, type TestDatabase } from "../../../support/database.js";

describe("POST /v1/admin/orgs/{id}/keys (createKey)", () => {
  let db: TestDatabase;
  let t: TestApp;
  beforeAll(async () => {
    db = await createTestDatabase();
    t = createTestApp({ sql: db.appSql });
  });
  afterAll(() => db.drop());

  it("shows a key once, storing only its hash", async () => {
    const org = await t.call("POST", "/v1/admin/orgs", { key: TEST_ADMIN_KEY, body: { name: "Acme AI" } });
    const key = await t.call("POST", `/v1/admin/orgs/${org.json.id}/keys`, {
      key: TEST_ADMIN_KEY,
      body: { scope: "org" },
    });
    expect(key.status).toBe(201);
    expect(key.json.key).toMatch(/^hk-[A-Za-z0-9]{40}$/);
    const rows = await db.sql`select key_hash, key_prefix from api_keys where id = ${key.json.id}`;
    expect(rows[0]!.key_hash).toHaveLength(32);
    expect(JSON.stringify(await db.sql`select * from api_keys`)).not.toContain(key.json.key);
    expect(key.json.key.startsWith(rows[0]!.key_prefix)).toBe(true);

    const balance = await t.call("GET", "/v1/billing/balance", { key: key.json.key });
    expect(balance.status).toBe(200);
  });

  it("an admin key created through the API works like the bootstrap key", async () => {
    const org = await t.createOrg("Ops");
    const admin = await t.call("POST", `/v1/admin/orgs/${org.id}/keys`, {
      key: TEST_ADMIN_KEY,
      body: { scope: "admin" },
    });
    const created = await t.call("POST", "/v1/admin/orgs", { key: admin.json.key, body: { name: "Made by ops" } });
    expect(created.status).toBe(201);
  });

  it("keys for an unknown organization are 404", async () => {
    const res = await t.call("POST", "/v1/admin/orgs/org_nope/keys", { key: TEST_ADMIN_KEY, body: { scope: "org" } });
    expect(res.status).toBe(404);
    expect(res.json.error.code).toBe("not_found");
  });
});
