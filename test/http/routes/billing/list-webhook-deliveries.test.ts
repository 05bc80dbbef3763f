import { describe, expect } from "vitest";
import { attemptDelivery, fanOutEvent } from "../../../../src/billing/webhooks/deliver.js";
import { emitEvent } from "../../../../src/billing/events/emit.js";
import { manualClock } from "../../../support/app.js";
import { testContext } from "../../../support/context.js";
import { appTest as it } from "../../../support/fixtures.js";
import { startWebhookReceiver } from "../../../support/webhook-receiver.js";

describe("GET /v1/billing/webhooks/{id}/deliveries (listWebhookDeliveries)", () => {
  const clock = manualClock(new Date("2026-11-15T12:00:00Z"));
  it.scoped({ appOptions: { clock, config: { WEBHOOK_ALLOW_LOCALHOST: "true" } } });

  it("shows each delivery with every attempt: status code, time, truncated answer", async ({ app, db }) => {
    const receiver = await startWebhookReceiver((_r, n, res) =>
      n === 1 ? res.writeHead(500).end("x".repeat(5_000)) : res.writeHead(200).end("thanks"),
    );
    try {
      const org = await app.createOrg();
      const made = await app.call("POST", "/v1/billing/webhooks", { key: org.orgKey, body: { url: receiver.url } });
      const ctx = testContext(db.appSql, { clock });
      const eventId = await db.appSql.begin((tx) =>
        emitEvent(tx, {
          orgId: org.id,
          type: "balance.low",
          factKey: "list-1",
          data: { threshold_usd: "5.00" },
          at: clock(),
        }),
      );
      const [deliveryId] = await fanOutEvent(ctx, { eventId: eventId ?? "" });
      const opts = { allowLocalhost: true, timeoutMs: 2_000, resolve: async () => [] };
      await attemptDelivery(ctx, { deliveryId: deliveryId ?? "" }, opts);
      clock.advance(5_000);
      await attemptDelivery(ctx, { deliveryId: deliveryId ?? "" }, opts);
      const res = await app.call("GET", `/v1/billing/webhooks/${made.json.id}/deliveries`, { key: org.orgKey });
      expect(res.status).toBe(200);
      expect(res.json).toEqual({
        has_more: false,
        data: [
          {
            id: deliveryId,
            event_id: eventId,
            event_type: "balance.low",
            status: "delivered",
            attempts: [
              {
                attempt: 1,
                status_code: 500,
                error: "answered 500",
                response: "x".repeat(1_000),
                at: "2026-11-15T12:00:00.000Z",
                duration_ms: expect.any(Number),
              },
              {
                attempt: 2,
                status_code: 200,
                error: null,
                response: "thanks",
                at: "2026-11-15T12:00:05.000Z",
                duration_ms: expect.any(Number),
              },
            ],
            next_attempt_at: null,
            delivered_at: "2026-11-15T12:00:05.000Z",
            created_at: "2026-11-15T12:00:00.000Z",
          },
        ],
      });
      const other = await app.createOrg("Other");
      expect(
        (await app.call("GET", `/v1/billing/webhooks/${made.json.id}/deliveries`, { key: other.orgKey })).status,
      ).toBe(404);
      expect(
        (await app.call("GET", `/v1/billing/webhooks/${made.json.id}/deliveries?limit=0`, { key: org.orgKey })).status,
      ).toBe(400);
    } finally {
      await receiver.close();
    }
  });
});
