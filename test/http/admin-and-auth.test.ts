import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { KeyCache } from "../../src/billing/api-keys.js";
import { createTestApp, TEST_ADMIN_KEY, type TestApp } from "../support/app.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";

describe("organizations, API keys and authentication", () => {
  let db: TestDatabase;
  let t: TestApp;
  beforeAll(async () => {
    db = await createTestDatabase();
    t = createTestApp({ sql: db.sql });
  });
  afterAll(() => db.drop());

  it("creates an organization and shows a key once, storing only its hash", async () => {
    const org = await t.call("POST", "/v1/admin/orgs", { key: TEST_ADMIN_KEY, body: { name: "Acme AI" } });
    expect(org.status).toBe(201);
    expect(org.json).toMatchObject({ id: expect.stringMatching(/^org_/), name: "Acme AI", low_balance_threshold: 10 });

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

  it("401 for a missing, malformed, unknown or revoked key, in the envelope with a request id", async () => {
    const org = await t.createOrg();
    const cases: [string | null, Record<string, string>][] = [
      [null, {}],
      [null, { authorization: "Basic abc" }],
      [null, { authorization: "Bearer" }],
      ["not-a-key", {}],
      ["hk-short", {}],
      ["hk-thisIsAWellFormedKeyThatDoesNotExist000", {}],
    ];
    for (const [key, headers] of cases) {
      const res = await t.call("GET", "/v1/billing/balance", { key, headers });
      expect(res.status, `${key} ${JSON.stringify(headers)}`).toBe(401);
      expect(res.json.error.type).toBe("authentication_error");
      expect(["missing_api_key", "invalid_api_key"]).toContain(res.json.error.code);
      expect(res.json.error.request_id).toBe(res.headers.get("x-request-id"));
    }
    const revoked = await t.call("POST", `/v1/admin/orgs/${org.id}/keys`, {
      key: TEST_ADMIN_KEY,
      body: { scope: "org" },
    });
    expect((await t.call("GET", "/v1/billing/balance", { key: revoked.json.key })).status).toBe(200);
    const del = await t.call("DELETE", `/v1/admin/keys/${revoked.json.id}`, { key: TEST_ADMIN_KEY });
    expect(del.status).toBe(200);
    expect(del.json.revoked).toBe(true);
    const again = await t.call("DELETE", `/v1/admin/keys/${revoked.json.id}`, { key: TEST_ADMIN_KEY });
    expect(again.json.revoked_at).toBe(del.json.revoked_at);
    const after = await t.call("GET", "/v1/billing/balance", { key: revoked.json.key });
    expect(after.status).toBe(401);
    expect(after.json.error.message).toMatch(/revoked/);
  });

  it("403 for a key of the wrong scope", async () => {
    const org = await t.createOrg();
    const asGateway = await t.call("GET", "/v1/billing/balance", { key: org.gatewayKey });
    expect(asGateway.status).toBe(403);
    expect(asGateway.json.error.code).toBe("insufficient_scope");
    const asOrg = await t.call("POST", "/v1/admin/orgs", { key: org.orgKey, body: { name: "x" } });
    expect(asOrg.status).toBe(403);
    const adminOnBilling = await t.call("GET", "/v1/billing/balance", { key: TEST_ADMIN_KEY });
    expect(adminOnBilling.status).toBe(403);
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

  it("keys for an unknown organization and unknown keys are 404", async () => {
    const res = await t.call("POST", "/v1/admin/orgs/org_nope/keys", { key: TEST_ADMIN_KEY, body: { scope: "org" } });
    expect(res.status).toBe(404);
    expect(res.json.error.code).toBe("not_found");
    expect((await t.call("DELETE", "/v1/admin/keys/key_nope", { key: TEST_ADMIN_KEY })).status).toBe(404);
    expect((await t.call("GET", "/v1/admin/orgs/org_nope", { key: TEST_ADMIN_KEY })).status).toBe(404);
  });

  it("keeps a sane caller request id and replaces a hostile one", async () => {
    const kept = await t.call("GET", "/healthz", { headers: { "x-request-id": "gw-12345678" } });
    expect(kept.headers.get("x-request-id")).toBe("gw-12345678");
    const replaced = await t.call("GET", "/healthz", { headers: { "x-request-id": "<script>" } });
    expect(replaced.headers.get("x-request-id")).toMatch(/^req_/);
  });

  it("with the key cache on (as the API process runs), a revocation still applies at once on this replica", async () => {
    const cached = createTestApp({ sql: db.sql, extra: { keyCache: new KeyCache() } });
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
