import { describe, expect } from "vitest";
import { appTest as it } from "../../../support/fixtures.js";

describe("DELETE /v1/billing/webhooks/{id} (deleteWebhook)", () => {
  it("removes the endpoint (marked, never deleted from the database); a second delete is 404", async ({ app, db }) => {
    const org = await app.createOrg();
    const made = await app.call("POST", "/v1/billing/webhooks", {
      key: org.orgKey,
      body: { url: "https://a.example.com" },
    });
    const path = `/v1/billing/webhooks/${made.json.id}`;
    const other = await app.createOrg("Other");
    expect((await app.call("DELETE", path, { key: other.orgKey })).status).toBe(404);
    const res = await app.call("DELETE", path, { key: org.orgKey });
    expect(res.status).toBe(200);
    expect(res.json).toEqual({ id: made.json.id, deleted: true });
    expect((await app.call("DELETE", path, { key: org.orgKey })).status).toBe(404);
    expect((await app.call("GET", path, { key: org.orgKey })).status).toBe(404);
    const [row] = await db.sql`select enabled, deleted_at from webhook_endpoints where id = ${made.json.id}`;
    expect(row?.enabled).toBe(false);
    expect(row?.deleted_at).toBeInstanceOf(Date);
  });
});
