import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApp, TEST_ADMIN_KEY, type TestApp } from "../../../support/app.js";
import { createTestDatabase, type TestDatabase } from "../../../support/database.js";

describe("GET /v1/admin/orgs/{id} (getOrg)", () => {
  let db: TestDatabase;
  let t: TestApp;
  beforeAll(async () => {
    db = await createTestDatabase();
    t = createTestApp({ sql: db.appSql });
  });
  afterAll(() => db.drop());

  it("returns the organization", async () => {
    const org = await t.createOrg("Readable");
    const res = await t.call("GET", `/v1/admin/orgs/${org.id}`, { key: TEST_ADMIN_KEY });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ id: org.id, name: "Readable", billing_anchor_day: 1 });
  });

  it("an unknown organization is 404", async () => {
    const res = await t.call("GET", "/v1/admin/orgs/org_nope", { key: TEST_ADMIN_KEY });
    expect(res.status).toBe(404);
    expect(res.json.error.code).toBe("not_found");
  });
});
