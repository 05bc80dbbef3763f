import { describe, expect } from "vitest";
import { appTest as it } from "../../../support/fixtures.js";

describe("PATCH /v1/billing/webhooks/{id} (updateWebhook)", () => {
  it("changes what is given and checks a new URL like a new endpoint's", async ({ app }) => {
    const org = await app.createOrg();
    const made = await app.call("POST", "/v1/billing/webhooks", {
      key: org.orgKey,
      body: { url: "https://a.example.com" },
    });
    const path = `/v1/billing/webhooks/${made.json.id}`;
    const off = await app.call("PATCH", path, { key: org.orgKey, body: { enabled: false } });
    expect(off.json).toMatchObject({ enabled: false, url: "https://a.example.com/", events: [] });
    const moved = await app.call("PATCH", path, {
      key: org.orgKey,
      body: { url: "https://b.example.com/h", events: ["invoice.paid"] },
    });
    expect(moved.json).toMatchObject({ enabled: false, url: "https://b.example.com/h", events: ["invoice.paid"] });
    for (const [body, param] of [
      [{}, ""],
      [{ url: "https://169.254.169.254/" }, "url"],
      [{ url: "http://b.example.com/" }, "url"],
      [{ events: ["nope"] }, "events.0"],
      [{ enabled: null }, "enabled"],
      [{ secret: "x" }, ""],
    ] as const) {
      const res = await app.call("PATCH", path, { key: org.orgKey, body });
      expect(res.status, JSON.stringify(body)).toBe(400);
      expect(res.json.error.code).toBe("invalid_request");
      if (param) expect(res.json.error.param).toBe(param);
    }
    const other = await app.createOrg("Other");
    expect((await app.call("PATCH", path, { key: other.orgKey, body: { enabled: true } })).status).toBe(404);
  });
});
