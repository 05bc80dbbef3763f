import { describe, expect } from "vitest";
import { TEST_ADMIN_KEY } from "../../../support/app.js";
import { appTest as it } from "../../../support/fixtures.js";

describe("POST /v1/admin/orgs (createOrg)", () => {
  it("creates an organization with the default threshold", async ({ app }) => {
    const org = await app.call("POST", "/v1/admin/orgs", { key: TEST_ADMIN_KEY, body: { name: "Acme AI" } });
    expect(org.status).toBe(201);
    expect(org.json).toMatchObject({ id: expect.stringMatching(/^org_/), name: "Acme AI", low_balance_threshold: 10 });
  });

  it("an org key may not create organizations (403)", async ({ app }) => {
    const org = await app.createOrg();
    const asOrg = await app.call("POST", "/v1/admin/orgs", { key: org.orgKey, body: { name: "x" } });
    expect(asOrg.status).toBe(403);
    expect(asOrg.json.error.code).toBe("insufficient_scope");
  });
});
