import { describe, expect } from "vitest";
import { TEST_ADMIN_KEY } from "../../../support/app.js";
import { appTest as it } from "../../../support/fixtures.js";

describe("GET /v1/admin/orgs/{id} (getOrg)", () => {
  it("returns the organization", async ({ app }) => {
    const org = await app.createOrg("Readable");
    const res = await app.call("GET", `/v1/admin/orgs/${org.id}`, { key: TEST_ADMIN_KEY });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ id: org.id, name: "Readable", billing_anchor_day: 1 });
  });

  it("an unknown organization is 404", async ({ app }) => {
    const res = await app.call("GET", "/v1/admin/orgs/org_nope", { key: TEST_ADMIN_KEY });
    expect(res.status).toBe(404);
    expect(res.json.error.code).toBe("not_found");
  });
});
