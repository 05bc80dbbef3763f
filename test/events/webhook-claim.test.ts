import type { ServerResponse } from "node:http";
import { describe, expect } from "vitest";
import { attemptDelivery, fanOutEvent, type DeliveryOptions } from "../../src/billing/webhooks/deliver.js";
import { emitEvent } from "../../src/billing/events/emit.js";
import { loadConfig } from "../../src/config.js";
import { manualClock } from "../support/app.js";
import { appTest as it } from "../support/fixtures.js";
import { testContext } from "../support/context.js";
import { waitFor } from "../support/process.js";
import { startWebhookReceiver } from "../support/webhook-receiver.js";

// README (Webhooks): "A worker claims an attempt in PostgreSQL before sending it, so two workers
// never send one attempt twice". WEBHOOK_TIMEOUT_MS may be up to 60 s, and the claim was a fixed
// 60 s that began before the host's lookup, which had no limit: a live worker's claim could lapse
// within its own send, and a second worker send the same attempt at once (helper-88). The claim is
// now the timeout and a margin, and the lookup counts against the timeout.
const clock = manualClock(new Date("2026-11-20T00:00:00Z"));
const DNS_MS = 300; // the customer's name server answering in 0.3 s

describe("a webhook attempt's claim", () => {
  it.scoped({ appOptions: { clock, config: { WEBHOOK_ALLOW_LOCALHOST: "true" } } });

  it("outlasts a live send at the largest WEBHOOK_TIMEOUT_MS the config accepts", async ({ app, db }) => {
    const timeoutMs = loadConfig({ NODE_ENV: "test", WEBHOOK_TIMEOUT_MS: "60000" }).WEBHOOK_TIMEOUT_MS;
    expect(timeoutMs).toBe(60_000); // accepted
    const held: ServerResponse[] = [];
    const receiver = await startWebhookReceiver((_r, _n, res) => held.push(res));
    const options: DeliveryOptions = {
      allowLocalhost: true,
      timeoutMs,
      resolve: async () => {
        await new Promise((r) => setTimeout(r, DNS_MS));
        return ["127.0.0.1"];
      },
    };
    try {
      const ctx = testContext(db.appSql, { clock });
      const org = await app.createOrg();
      // A host name, resolved before each attempt (https://hooks.example in production; plain http here
      // to reach the local receiver, written directly since the API takes http only for loopback names).
      const url = receiver.url.replace("127.0.0.1", "hooks.example");
      const made = await app.call("POST", "/v1/billing/webhooks", { key: org.orgKey, body: { url: receiver.url } });
      expect(made.status, made.text).toBe(201);
      await db.sql`update webhook_endpoints set url = ${url} where id = ${made.json.id}`;
      const eventId = await db.appSql.begin((tx) =>
        emitEvent(tx, {
          orgId: org.id,
          type: "balance.depleted",
          factKey: "claim-1",
          data: { balance: 0, balance_usd: "0", balance_nano_usd: "0", transaction_id: "txn_c1" },
          at: clock(),
        }),
      );
      const [deliveryId] = await fanOutEvent(ctx, { eventId: eventId ?? "" });
      if (!deliveryId) throw new Error("no delivery");

      // Worker A claims at T and starts its send at T + 0.3 s (after DNS); its timeout ends at T + 60.3 s.
      const a = attemptDelivery(ctx, { deliveryId }, options).catch((err: Error) => ({ threw: err.message }));
      await waitFor(() => receiver.received.length === 1, { what: "A's send" });
      // At T + 60.1 s the receiver is still working on A's request (within A's timeout); the sweep's worker B asks.
      clock.advance(60_100);
      const b = attemptDelivery(ctx, { deliveryId }, options).catch((err: Error) => ({ threw: err.message }));
      const bOutcome = await Promise.race([b, new Promise((r) => setTimeout(() => r("b still running"), 2_000))]);
      for (const res of held) res.writeHead(200).end("ok");
      const aOutcome = await a;
      const bFinal = await b;
      expect({ sends: receiver.received.length, a: aOutcome, b: bFinal, bEarly: bOutcome }).toEqual({
        sends: 1,
        a: { outcome: "delivered", attempt: 1, statusCode: 200 },
        b: { outcome: "not_due" },
        bEarly: { outcome: "not_due" },
      });
    } finally {
      for (const res of held) if (!res.writableEnded) res.destroy();
      await receiver.close();
    }
  });

  it("gives up on a host whose lookup takes longer than the timeout, as a failed attempt", async ({ app, db }) => {
    const options: DeliveryOptions = { allowLocalhost: true, timeoutMs: 300, resolve: () => new Promise(() => {}) };
    const ctx = testContext(db.appSql, { clock });
    const org = await app.createOrg();
    const made = await app.call("POST", "/v1/billing/webhooks", {
      key: org.orgKey,
      body: { url: "http://localhost:9/hook" },
    });
    expect(made.status, made.text).toBe(201);
    await db.sql`update webhook_endpoints set url = 'https://hooks.example/hook' where id = ${made.json.id}`;
    const eventId = await db.appSql.begin((tx) =>
      emitEvent(tx, {
        orgId: org.id,
        type: "balance.depleted",
        factKey: "slow-dns-1",
        data: { balance: 0, balance_usd: "0", balance_nano_usd: "0", transaction_id: "txn_d1" },
        at: clock(),
      }),
    );
    const [deliveryId] = await fanOutEvent(ctx, { eventId: eventId ?? "" });
    if (!deliveryId) throw new Error("no delivery");
    const outcome = await attemptDelivery(ctx, { deliveryId }, options);
    expect(outcome).toMatchObject({ outcome: "retry", attempt: 1 });
    const [attempt] = await db.sql`select error from webhook_attempts where delivery_id = ${deliveryId}`;
    expect(attempt?.error).toBe("target refused: hooks.example does not resolve (no answer within 300 ms)");
  });
});
