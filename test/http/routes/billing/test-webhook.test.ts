import { describe, expect } from "vitest";
import { appTest as it } from "../../../support/fixtures.js";

// Its delivery to a real receiver: test/events/webhook-delivery.test.ts.
describe("POST /v1/billing/webhooks/{id}/test (testWebhook)", () => {
  it("writes a test.ping for this endpoint only, in the log, with its delivery due now", async ({ app, db }) => {
    const org = await app.createOrg();
    const a = await app.call("POST", "/v1/billing/webhooks", {
      key: org.orgKey,
      body: { url: "https://a.example.com" },
    });
    await app.call("POST", "/v1/billing/webhooks", { key: org.orgKey, body: { url: "https://b.example.com" } });
    const res = await app.call("POST", `/v1/billing/webhooks/${a.json.id}/test`, { key: org.orgKey });
    expect(res.status).toBe(202);
    expect(res.json).toEqual({ event_id: expect.stringMatching(/^evt_/), delivery_id: expect.stringMatching(/^dlv_/) });
    const deliveries =
      await db.sql`select endpoint_id, status from webhook_deliveries where event_id = ${res.json.event_id}`;
    expect(deliveries).toEqual([{ endpoint_id: a.json.id, status: "pending" }]);
    const log = await app.call("GET", "/v1/billing/events?type=test.ping", { key: org.orgKey });
    expect(log.json.data.map((e: { id: string }) => e.id)).toEqual([res.json.event_id]);
    expect(log.json.data[0].data).toEqual({ webhook_id: a.json.id });
    expect((await app.call("POST", "/v1/billing/webhooks/wh_nope/test", { key: org.orgKey })).status).toBe(404);
  });

  it("another org's endpoint is a 404 and writes nothing", async ({ app, db }) => {
    const owner = await app.createOrg();
    const intruder = await app.createOrg();
    const made = await app.call("POST", "/v1/billing/webhooks", {
      key: owner.orgKey,
      body: { url: "https://a.example.com" },
    });
    const res = await app.call("POST", `/v1/billing/webhooks/${made.json.id}/test`, { key: intruder.orgKey });
    expect(res.status).toBe(404);
    const [n] = await db.sql<{ n: bigint }[]>`
      select count(*) as n from billing_events where org_id in (${owner.id}, ${intruder.id})`;
    expect(Number(n?.n)).toBe(0);
  });
});
