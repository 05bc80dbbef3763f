import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApp, TEST_ADMIN_KEY, type TestApp } from "../../../support/app.js";
import { createTestDatabase, type TestDatabase } from "../../../support/database.js";

describe("POST /v1/admin/orgs (createOrg)", () => {
  let db: TestDatabase;
  let t: TestApp;
  beforeAll(async () => {
    db = await createTestDatabase();
    t = createTestApp({ sql: db.appSql });
  });
  afterAll(() => db.drop());

  it("creates an organization with the default threshold", async () => {
    const org = await t.call("POST", "/v1/admin/orgs", { key: TEST_ADMIN_KEY, body: { name: "Acme AI" } });
    expect(org.status).toBe(201);
    expect(org.json).toMatchObject({ id: expect.stringMatching(/^org_/), name: "Acme AI", low_balance_threshold: 10 });
  });

  it("an org key may not create organizations (403)", async () => {
    const org = await t.createOrg();
    const asOrg = await t.call("POST", "/v1/admin/orgs", { key: org.orgKey, body: { name: "x" } });
    expect(asOrg.status).toBe(403);
    expect(asOrg.json.error.code).toBe("insufficient_scope");
  });
});
