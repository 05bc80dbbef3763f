import { describe, expect } from "vitest";
import { appTest as it } from "../../../support/fixtures.js";

describe("GET /v1/billing/webhooks (listWebhooks)", () => {
  it("lists the org's endpoints, oldest first, without deleted ones or other orgs'", async ({ app }) => {
    const org = await app.createOrg();
    const other = await app.createOrg("Other");
    const make = async (key: string, url: string) =>
      (await app.call("POST", "/v1/billing/webhooks", { key, body: { url } })).json.id as string;
    const a = await make(org.orgKey, "https://a.example.com");
    const b = await make(org.orgKey, "https://b.example.com");
    await make(other.orgKey, "https://c.example.com");
    await app.call("DELETE", `/v1/billing/webhooks/${a}`, { key: org.orgKey });
    const list = await app.call("GET", "/v1/billing/webhooks", { key: org.orgKey });
    expect(list.status).toBe(200);
    expect(list.json.data.map((e: { id: string }) => e.id)).toEqual([b]);
    expect((await app.call("GET", "/v1/billing/webhooks", { key: org.gatewayKey })).status).toBe(403);
  });
});
