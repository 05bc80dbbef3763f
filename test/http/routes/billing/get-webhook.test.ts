import { describe, expect } from "vitest";
import { appTest as it } from "../../../support/fixtures.js";

describe("GET /v1/billing/webhooks/{id} (getWebhook)", () => {
  it("shows the org's endpoint without its secret; another org's or an unknown id is 404", async ({ app }) => {
    const org = await app.createOrg();
    const other = await app.createOrg("Other");
    const made = await app.call("POST", "/v1/billing/webhooks", {
      key: org.orgKey,
      body: { url: "https://a.example.com/h", enabled: false },
    });
    const got = await app.call("GET", `/v1/billing/webhooks/${made.json.id}`, { key: org.orgKey });
    expect(got.status).toBe(200);
    const { secret: _secret, ...shown } = made.json;
    expect(got.json).toEqual(shown);
    expect(got.json.enabled).toBe(false);
    for (const [key, id] of [
      [other.orgKey, made.json.id],
      [org.orgKey, "wh_unknown"],
    ]) {
      const res = await app.call("GET", `/v1/billing/webhooks/${id}`, { key });
      expect(res.status).toBe(404);
      expect(res.json.error.code).toBe("not_found");
    }
    expect((await app.call("GET", `/v1/billing/webhooks/${"x".repeat(65)}`, { key: org.orgKey })).status).toBe(400);
  });
});
