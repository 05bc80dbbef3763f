import { describe, expect } from "vitest";
import { attemptDelivery, fanOutEvent } from "../../../../src/billing/webhooks/deliver.js";
import { emitEvent } from "../../../../src/billing/events/emit.js";
import { manualClock } from "../../../support/app.js";
import { testContext } from "../../../support/context.js";
import { appTest as it } from "../../../support/fixtures.js";
import { startWebhookReceiver } from "../../../support/webhook-receiver.js";

describe("POST /v1/billing/webhooks/{id}/deliveries/{delivery_id}/retry (retryWebhookDelivery)", () => {
  const clock = manualClock(new Date("2026-11-15T12:00:00Z"));
  it.scoped({ appOptions: { clock, config: { WEBHOOK_ALLOW_LOCALHOST: "true" } } });

  it("makes a waiting delivery due now, once more with the same event id; a delivered one is 409", async ({
    app,
    db,
  }) => {
    let up = false;
    const receiver = await startWebhookReceiver((_r, _n, res) => res.writeHead(up ? 200 : 503).end());
    try {
      const org = await app.createOrg();
      const made = await app.call("POST", "/v1/billing/webhooks", { key: org.orgKey, body: { url: receiver.url } });
      const ctx = testContext(db.appSql, { clock });
      const eventId = await db.appSql.begin((tx) =>
        emitEvent(tx, {
          orgId: org.id,
          type: "balance.low",
          factKey: "retry-1",
          data: { threshold_usd: "5.00" },
          at: clock(),
        }),
      );
      const [deliveryId] = await fanOutEvent(ctx, { eventId: eventId ?? "" });
      const opts = { allowLocalhost: true, timeoutMs: 2_000, resolve: async () => [] };
      expect(await attemptDelivery(ctx, { deliveryId: deliveryId ?? "" }, opts)).toMatchObject({ outcome: "retry" });
      expect(await attemptDelivery(ctx, { deliveryId: deliveryId ?? "" }, opts)).toEqual({ outcome: "not_due" });
      const path = `/v1/billing/webhooks/${made.json.id}/deliveries/${deliveryId}/retry`;
      const res = await app.call("POST", path, { key: org.orgKey });
      expect(res.status).toBe(202);
      expect(res.json).toEqual({ id: deliveryId, status: "pending" });
      up = true;
      expect(await attemptDelivery(ctx, { deliveryId: deliveryId ?? "" }, opts)).toMatchObject({
        outcome: "delivered",
      });
      expect(new Set(receiver.received.map((r) => r.headers["webhook-id"]))).toEqual(new Set([eventId]));
      const again = await app.call("POST", path, { key: org.orgKey });
      expect(again.status).toBe(409);
      expect(again.json.error.code).toBe("conflict");
      expect(
        (await app.call("POST", `/v1/billing/webhooks/${made.json.id}/deliveries/dlv_nope/retry`, { key: org.orgKey }))
          .status,
      ).toBe(404);
      const other = await app.createOrg("Other");
      expect((await app.call("POST", path, { key: other.orgKey })).status).toBe(404);
    } finally {
      await receiver.close();
    }
  });

  it("a test.ping is attempted once: a failing receiver gets one request, and the delivery waits for a retry by hand", async ({
    app,
    db,
  }) => {
    const receiver = await startWebhookReceiver((_r, _n, res) => res.writeHead(503).end());
    try {
      const org = await app.createOrg();
      const made = await app.call("POST", "/v1/billing/webhooks", { key: org.orgKey, body: { url: receiver.url } });
      const ping = await app.call("POST", `/v1/billing/webhooks/${made.json.id}/test`, { key: org.orgKey });
      expect(ping.status).toBe(202);
      const ctx = testContext(db.appSql, { clock });
      const opts = { allowLocalhost: true, timeoutMs: 2_000, resolve: async () => [] };
      expect(await attemptDelivery(ctx, { deliveryId: ping.json.delivery_id }, opts)).toMatchObject({
        outcome: "failed",
        attempt: 1,
      });
      clock.advance(4 * 86_400_000);
      expect(await attemptDelivery(ctx, { deliveryId: ping.json.delivery_id }, opts)).toEqual({ outcome: "not_due" });
      expect(receiver.received).toHaveLength(1);
      const [row] = await db.sql<{ status: string; next_attempt_at: Date | null }[]>`
        select status, next_attempt_at from webhook_deliveries where id = ${ping.json.delivery_id}`;
      expect(row).toEqual({ status: "failed", next_attempt_at: null });
    } finally {
      await receiver.close();
    }
  });
});
