import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApp, type TestApp } from "../support/app.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";

describe("OpenAPI document and docs page", () => {
  let db: TestDatabase;
  let t: TestApp;
  beforeAll(async () => {
    db = await createTestDatabase();
    t = createTestApp({ sql: db.sql });
  });
  afterAll(() => db.drop());

  it("is generated from the same zod schemas that validate requests", async () => {
    const res = await t.call("GET", "/v1/openapi.json");
    expect(res.status).toBe(200);
    const doc = res.json;
    expect(doc.openapi).toBe("3.1.0");
    const grant = doc.paths["/v1/admin/orgs/{id}/credits"].post;
    const schema = grant.requestBody.content["application/json"].schema;
    const resolved = schema.$ref ? doc.components.schemas[schema.$ref.split("/").pop()] : schema;
    expect(resolved.required).toEqual(expect.arrayContaining(["amount", "reason"]));
    expect(doc.components.schemas.Balance.properties).toHaveProperty("low_balance_threshold");
    expect(doc.components.securitySchemes.bearer).toMatchObject({ type: "http", scheme: "bearer" });
  });

  it("renders a docs page listing every path of the document", async () => {
    const doc = (await t.call("GET", "/v1/openapi.json")).json;
    const page = await t.call("GET", "/docs");
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toContain("text/html");
    for (const path of Object.keys(doc.paths)) expect(page.text).toContain(path);
  });
});
