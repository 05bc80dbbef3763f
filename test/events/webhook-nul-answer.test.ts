import { describe, expect } from "vitest";
import { attemptDelivery, fanOutEvent, type DeliveryOptions } from "../../src/billing/webhooks/deliver.js";
import { emitEvent } from "../../src/billing/events/emit.js";
import { manualClock } from "../support/app.js";
import { appTest as it } from "../support/fixtures.js";
import { testContext } from "../support/context.js";
import { startWebhookReceiver } from "../support/webhook-receiver.js";

// A customer's receiver controls the body of its answer. A NUL character in it (valid HTTP) could
// not be kept in PostgreSQL text (22021): the attempt went unrecorded, and the same event was sent
// again at every lapse of its claim, with no attempt counted, no backoff and no end (helper-88).
// The excerpt keeps U+FFFD in its place.
const clock = manualClock(new Date("2026-11-20T00:00:00Z"));
const options: DeliveryOptions = {
  allowLocalhost: true,
  timeoutMs: 2_000,
  resolve: async () => {
    throw new Error("no DNS here");
  },
};

describe("a webhook receiver whose answer holds a NUL character", () => {
  it.scoped({ appOptions: { clock, config: { WEBHOOK_ALLOW_LOCALHOST: "true" } } });

  it("is recorded as delivered once (2xx), not re-sent every minute forever", async ({ app, db }) => {
    const receiver = await startWebhookReceiver((_r, _n, res) => {
      res.writeHead(200, { "content-type": "text/plain" }).end("ok\u0000");
    });
    try {
      const ctx = testContext(db.appSql, { clock });
      const org = await app.createOrg();
      const made = await app.call("POST", "/v1/billing/webhooks", { key: org.orgKey, body: { url: receiver.url } });
      expect(made.status, made.text).toBe(201);
      const eventId = await db.appSql.begin((tx) =>
        emitEvent(tx, {
          orgId: org.id,
          type: "balance.depleted",
          factKey: "nul-1",
          data: { balance: 0, balance_usd: "0", balance_nano_usd: "0", transaction_id: "txn_nul" },
          at: clock(),
        }),
      );
      const [deliveryId] = await fanOutEvent(ctx, { eventId: eventId ?? "" });
      if (!deliveryId) throw new Error("no delivery");

      // Expected: the receiver said 200, so the delivery is done.
      let first: unknown;
      try {
        first = await attemptDelivery(ctx, { deliveryId }, options);
      } catch (err) {
        first = { threw: (err as Error).message };
      }
      // Later: a worker (or the sweep) asks again after the claim would have lapsed.
      clock.advance(61_000);
      let second: unknown;
      try {
        second = await attemptDelivery(ctx, { deliveryId }, options);
      } catch (err) {
        second = { threw: (err as Error).message };
      }
      const [row] = await db.sql`select status, attempts from webhook_deliveries where id = ${deliveryId}`;
      const [attempt] = await db.sql`select response_excerpt from webhook_attempts where delivery_id = ${deliveryId}`;
      expect({ first, second, row, sends: receiver.received.length, attempt }).toEqual({
        first: { outcome: "delivered", attempt: 1, statusCode: 200 },
        second: { outcome: "not_due" },
        row: { status: "delivered", attempts: 1 },
        sends: 1,
        attempt: { response_excerpt: "ok\ufffd" },
      });
    } finally {
      await receiver.close();
    }
  });
});
