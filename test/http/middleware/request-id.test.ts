import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApp, type TestApp } from "../../support/app.js";
import { createTestDatabase, type TestDatabase } from "../../support/database.js";

describe("request ids", () => {
  let db: TestDatabase;
  let t: TestApp;
  beforeAll(async () => {
    db = await createTestDatabase();
    t = createTestApp({ sql: db.appSql });
  });
  afterAll(() => db.drop());

  it("keeps a sane caller request id and replaces a hostile one", async () => {
    const kept = await t.call("GET", "/healthz", { headers: { "x-request-id": "gw-12345678" } });
    expect(kept.headers.get("x-request-id")).toBe("gw-12345678");
    const replaced = await t.call("GET", "/healthz", { headers: { "x-request-id": "<script>" } });
    expect(replaced.headers.get("x-request-id")).toMatch(/^req_/);
  });
});
