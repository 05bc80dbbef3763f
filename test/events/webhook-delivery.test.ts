import { pino } from "pino";
import { Webhook } from "standardwebhooks";
import { describe, expect } from "vitest";
import {
  attemptDelivery,
  dueDeliveries,
  fanOutEvent,
  type DeliveryOptions,
} from "../../src/billing/webhooks/deliver.js";
import { RETRY_DELAYS_MS } from "../../src/billing/webhooks/schedule.js";
import type { Resolver } from "../../src/billing/webhooks/targets.js";
import { emitEvent } from "../../src/billing/events/emit.js";
import { startWorkers } from "../../src/workers/start-workers.js";
import { manualClock, type TestApp } from "../support/app.js";
import { appTest as it } from "../support/fixtures.js";
import { testContext } from "../support/context.js";
import { waitFor } from "../support/process.js";
import { clearRedisPrefix } from "../support/redis.js";
import { startWebhookReceiver, type ReceivedWebhook } from "../support/webhook-receiver.js";

// Deliveries to real receivers (node:http servers on 127.0.0.1) that check every signature with the
// standardwebhooks package. Nothing here opens a socket to anything but 127.0.0.1: the host names
// below resolve through `resolver`, which maps them to the addresses each case needs.
const clock = manualClock(new Date());
const resolver: Resolver = async (host) => {
  const table: Record<string, string[]> = {
    "private.example": ["10.1.2.3"],
    "link-local.example": ["169.254.10.20"],
    "metadata.example": ["169.254.169.254"],
    "v6-private.example": ["fd00::1"],
    "mixed.example": ["93.184.216.34", "192.168.1.1"],
    "mapped.example": ["::ffff:127.0.0.1"],
    "compat.example": ["::7f00:1"], // IPv4-compatible ::127.0.0.1
    "6to4.example": ["2002:a9fe:a9fe::1"], // 6to4 around 169.254.169.254
    "zone.example": ["fe80::1%eth0"], // link-local with a zone id
  };
  const addresses = table[host];
  if (!addresses) throw new Error(`ENOTFOUND ${host}`);
  return addresses;
};
const options: DeliveryOptions = { allowLocalhost: true, timeoutMs: 2_000, resolve: resolver };

/** The signature header checked as a receiver would, at the attempt's own time (the clock here is moved). */
function verifies(secret: string, r: ReceivedWebhook): boolean {
  const id = String(r.headers["webhook-id"]);
  const ts = String(r.headers["webhook-timestamp"]);
  const expected = new Webhook(secret).sign(id, new Date(Number(ts) * 1000), r.body);
  return String(r.headers["webhook-signature"]).split(" ").includes(expected);
}

describe("webhook deliveries", () => {
  it.scoped({ dbOptions: { max: 20 }, appOptions: { clock, config: { WEBHOOK_ALLOW_LOCALHOST: "true" } } });

  const createEndpoint = async (app: TestApp, key: string, url: string, events: string[] = []) => {
    const res = await app.call("POST", "/v1/billing/webhooks", { key, body: { url, events } });
    expect(res.status, res.text).toBe(201);
    return res.json as { id: string; secret: string };
  };
  let n = 0;
  /** An event as a fact would write it (its payload's content does not matter to delivery). */
  const ping = async (db: { appSql: Parameters<typeof testContext>[0] }, orgId: string) =>
    db.appSql.begin((tx) =>
      emitEvent(tx, {
        orgId,
        type: "balance.depleted",
        factKey: `fact-${++n}`,
        data: { balance: 0, balance_usd: "0", balance_nano_usd: "0", transaction_id: `txn_${n}` },
        at: clock(),
      }),
    );

  it("workers deliver a real fact's event, signed per Standard Webhooks, to the endpoints that want it", async ({
    app,
    db,
    redis,
  }) => {
    clock.set(new Date());
    const receiver = await startWebhookReceiver();
    const other = await startWebhookReceiver();
    const workers = await startWorkers({
      sql: db.appSql,
      connection: redis.connection,
      prefix: redis.prefix,
      logger: pino({ level: "silent" }),
      clock: () => new Date(),
      config: app.config,
      maintenanceEveryMs: 500,
      resolve: resolver,
    });
    try {
      const org = await app.createOrg();
      const endpoint = await createEndpoint(app, org.orgKey, receiver.url, ["balance.low"]);
      await createEndpoint(app, org.orgKey, other.url, ["invoice.paid"]);
      await app.grant(org.id, "10.01");
      const spend = await app.call("POST", "/v1/billing/usage", {
        key: org.gatewayKey,
        body: {
          events: [
            {
              idempotency_key: "cross",
              org_id: org.id,
              timestamp: clock().toISOString(),
              product: "api",
              quantities: { requests: 200 },
            },
          ],
        },
      });
      expect(spend.status).toBe(200);
      await waitFor(() => receiver.received.length === 1, { what: "balance.low delivered" });
      const [got] = receiver.received;
      if (!got) throw new Error("nothing received");
      // The receiver's own check, with the real clock: the package's verify (signature and timestamp).
      const payload = new Webhook(endpoint.secret).verify(got.body, got.headers as Record<string, string>);
      const log = await app.call("GET", "/v1/billing/events?type=balance.low", { key: org.orgKey });
      expect(payload).toEqual(log.json.data[0]);
      expect(got.headers["webhook-id"]).toBe(log.json.data[0].id);
      expect(got.headers["content-type"]).toBe("application/json");
      expect(() =>
        new Webhook(`whsec_${Buffer.from("another secret!!").toString("base64")}`).verify(
          got.body,
          got.headers as Record<string, string>,
        ),
      ).toThrow();
      // The other endpoint wants only invoice.paid.
      expect(other.received).toHaveLength(0);

      // test.ping goes to the endpoint it names only.
      const test = await app.call("POST", `/v1/billing/webhooks/${endpoint.id}/test`, { key: org.orgKey });
      expect(test.status).toBe(202);
      await waitFor(() => receiver.received.length === 2, { what: "test.ping delivered" });
      expect(JSON.parse(receiver.received[1]?.body ?? "{}")).toMatchObject({
        id: test.json.event_id,
        type: "test.ping",
        data: { webhook_id: endpoint.id },
      });
      expect(other.received).toHaveLength(0);
    } finally {
      await workers.close();
      await receiver.close();
      await other.close();
    }
  });

  it("a receiver that fails and comes back gets the event once it answers 2xx, with the same id, on the documented schedule", async ({
    app,
    db,
  }) => {
    clock.set(new Date("2026-11-20T00:00:00Z"));
    const receiver = await startWebhookReceiver((_r, n, res) => {
      if (n <= 3) res.writeHead(503).end("down for maintenance");
      else res.writeHead(204).end();
    });
    try {
      const ctx = testContext(db.appSql, { clock });
      const org = await app.createOrg();
      const endpoint = await createEndpoint(app, org.orgKey, receiver.url);
      const eventId = await ping(db, org.id);
      const [deliveryId] = await fanOutEvent(ctx, { eventId: eventId ?? "" });
      if (!deliveryId) throw new Error("no delivery");
      expect(await fanOutEvent(ctx, { eventId: eventId ?? "" })).toEqual([]); // once per event

      const first = await attemptDelivery(ctx, { deliveryId }, options);
      expect(first).toMatchObject({ outcome: "retry", attempt: 1, error: "answered 503" });
      if (first.outcome !== "retry") throw new Error("expected a retry");
      expect(first.nextAttemptAt.getTime() - clock().getTime()).toBe(RETRY_DELAYS_MS[0]);
      // Not due yet: nothing is sent, however often it is asked.
      expect(await attemptDelivery(ctx, { deliveryId }, options)).toEqual({ outcome: "not_due" });
      expect(await dueDeliveries(ctx)).toEqual([]);
      clock.advance(RETRY_DELAYS_MS[0]);
      expect(await dueDeliveries(ctx)).toEqual([{ id: deliveryId, attempts: 1 }]);
      expect(await attemptDelivery(ctx, { deliveryId }, options)).toMatchObject({ outcome: "retry", attempt: 2 });
      clock.advance(RETRY_DELAYS_MS[1]);
      expect(await attemptDelivery(ctx, { deliveryId }, options)).toMatchObject({ outcome: "retry", attempt: 3 });
      const [failing] = await db.sql`select failing_since from webhook_endpoints where id = ${endpoint.id}`;
      expect(failing?.failing_since).toEqual(new Date("2026-11-20T00:00:00Z"));
      clock.advance(RETRY_DELAYS_MS[2]);
      expect(await attemptDelivery(ctx, { deliveryId }, options)).toEqual({
        outcome: "delivered",
        attempt: 4,
        statusCode: 204,
      });
      expect(await attemptDelivery(ctx, { deliveryId }, options)).toEqual({ outcome: "not_due" });

      expect(receiver.received).toHaveLength(4);
      expect(new Set(receiver.received.map((r) => r.headers["webhook-id"]))).toEqual(new Set([eventId]));
      expect(receiver.received.every((r) => verifies(endpoint.secret, r))).toBe(true);
      const attempts = await db.sql<{ attempt: number; status_code: number; response_excerpt: string | null }[]>`
        select attempt, status_code, response_excerpt from webhook_attempts where delivery_id = ${deliveryId} order by attempt`;
      expect(attempts).toEqual([
        { attempt: 1, status_code: 503, response_excerpt: "down for maintenance" },
        { attempt: 2, status_code: 503, response_excerpt: "down for maintenance" },
        { attempt: 3, status_code: 503, response_excerpt: "down for maintenance" },
        { attempt: 4, status_code: 204, response_excerpt: null },
      ]);
      const [after] = await db.sql`select failing_since from webhook_endpoints where id = ${endpoint.id}`;
      expect(after?.failing_since).toBeNull();
    } finally {
      await receiver.close();
    }
  });

  it("gives up after ten attempts over about three days", async ({ app, db }) => {
    clock.set(new Date("2026-11-21T00:00:00Z"));
    const receiver = await startWebhookReceiver((_r, _n, res) => res.writeHead(500).end());
    try {
      const ctx = testContext(db.appSql, { clock });
      const org = await app.createOrg();
      await createEndpoint(app, org.orgKey, receiver.url);
      const [deliveryId] = await fanOutEvent(ctx, { eventId: (await ping(db, org.id)) ?? "" });
      if (!deliveryId) throw new Error("no delivery");
      const start = clock().getTime();
      const outcomes = [];
      for (let i = 0; i < 10; i++) {
        outcomes.push((await attemptDelivery(ctx, { deliveryId }, options)).outcome);
        clock.advance(RETRY_DELAYS_MS[i] ?? 0);
      }
      expect(outcomes).toEqual([...Array(9).fill("retry"), "failed"]);
      const total = RETRY_DELAYS_MS.reduce((a, b) => a + b, 0);
      expect(total / 3_600_000).toBeCloseTo(75.58, 1);
      expect(clock().getTime() - start).toBe(total);
      const [row] =
        await db.sql`select status, attempts, next_attempt_at from webhook_deliveries where id = ${deliveryId}`;
      expect(row).toEqual({ status: "failed", attempts: 10, next_attempt_at: null });
      expect(receiver.received).toHaveLength(10);
    } finally {
      await receiver.close();
    }
  });

  it("an endpoint failing for five days is disabled, and its org is told in the event log", async ({ app, db }) => {
    clock.set(new Date("2026-11-01T00:00:00Z"));
    const receiver = await startWebhookReceiver((_r, _n, res) => res.writeHead(500).end());
    try {
      const ctx = testContext(db.appSql, { clock });
      const org = await app.createOrg();
      const endpoint = await createEndpoint(app, org.orgKey, receiver.url);
      const [first] = await fanOutEvent(ctx, { eventId: (await ping(db, org.id)) ?? "" });
      expect(await attemptDelivery(ctx, { deliveryId: first ?? "" }, options)).toMatchObject({ outcome: "retry" });
      clock.advance(5 * 24 * 3_600_000 - 1_000);
      const [second] = await fanOutEvent(ctx, { eventId: (await ping(db, org.id)) ?? "" });
      await attemptDelivery(ctx, { deliveryId: second ?? "" }, options);
      expect((await app.call("GET", `/v1/billing/webhooks/${endpoint.id}`, { key: org.orgKey })).json.enabled).toBe(
        true,
      );
      clock.advance(1_000);
      const [third] = await fanOutEvent(ctx, { eventId: (await ping(db, org.id)) ?? "" });
      await attemptDelivery(ctx, { deliveryId: third ?? "" }, options);
      const shown = await app.call("GET", `/v1/billing/webhooks/${endpoint.id}`, { key: org.orgKey });
      expect(shown.json).toMatchObject({
        enabled: false,
        disabled_reason: "failing for five days",
        failing_since: "2026-11-01T00:00:00.000Z",
      });
      const log = await app.call("GET", "/v1/billing/events?type=webhook_endpoint.disabled", { key: org.orgKey });
      expect(log.json.data).toHaveLength(1);
      expect(log.json.data[0].data).toEqual({
        webhook_id: endpoint.id,
        url: receiver.url,
        failing_since: "2026-11-01T00:00:00.000Z",
      });
      // New events no longer go to it, and its pending retries stop without a request.
      expect(await fanOutEvent(ctx, { eventId: (await ping(db, org.id)) ?? "" })).toEqual([]);
      const sent = receiver.received.length;
      clock.advance(24 * 3_600_000);
      expect(await attemptDelivery(ctx, { deliveryId: first ?? "" }, options)).toMatchObject({ outcome: "failed" });
      expect(receiver.received).toHaveLength(sent);
      // Enabled again by its owner: a fresh start.
      const enabled = await app.call("PATCH", `/v1/billing/webhooks/${endpoint.id}`, {
        key: org.orgKey,
        body: { enabled: true },
      });
      expect(enabled.json).toMatchObject({ enabled: true, disabled_reason: null, failing_since: null });
    } finally {
      await receiver.close();
    }
  });

  it("a receiver that does not answer within the timeout is a failed attempt, retried", async ({ app, db }) => {
    clock.set(new Date("2026-11-25T00:00:00Z"));
    const held: import("node:http").ServerResponse[] = [];
    const receiver = await startWebhookReceiver((_r, _n, res) => held.push(res)); // never answers
    try {
      const ctx = testContext(db.appSql, { clock });
      const org = await app.createOrg();
      await createEndpoint(app, org.orgKey, receiver.url);
      const [id] = await fanOutEvent(ctx, { eventId: (await ping(db, org.id)) ?? "" });
      const started = Date.now();
      const outcome = await attemptDelivery(ctx, { deliveryId: id ?? "" }, { ...options, timeoutMs: 300 });
      expect(outcome).toMatchObject({ outcome: "retry", attempt: 1, error: "no answer within 300 ms" });
      expect(Date.now() - started).toBeLessThan(5_000);
      expect(receiver.received).toHaveLength(1);
    } finally {
      for (const res of held) res.destroy();
      await receiver.close();
    }
  });

  it("an answer that streams without end is read to its first 1,000 characters, not to the timeout", async ({
    app,
    db,
  }) => {
    clock.set(new Date("2026-11-25T06:00:00Z"));
    const streams: import("node:http").ServerResponse[] = [];
    const receiver = await startWebhookReceiver((_r, _n, res) => {
      res.writeHead(200, { "content-type": "text/plain" });
      streams.push(res);
      const timer = setInterval(() => (res.destroyed ? clearInterval(timer) : res.write("x".repeat(256))), 1);
    });
    try {
      const ctx = testContext(db.appSql, { clock });
      const org = await app.createOrg();
      await createEndpoint(app, org.orgKey, receiver.url);
      const [id] = await fanOutEvent(ctx, { eventId: (await ping(db, org.id)) ?? "" });
      const outcome = await attemptDelivery(ctx, { deliveryId: id ?? "" }, { ...options, timeoutMs: 3_000 });
      expect(outcome).toMatchObject({ outcome: "delivered", attempt: 1, statusCode: 200 });
      const [attempt] = await db.sql<{ response_excerpt: string; duration_ms: number }[]>`
        select response_excerpt, duration_ms from webhook_attempts where delivery_id = ${id ?? ""}`;
      expect(attempt?.response_excerpt).toBe("x".repeat(1_000));
      expect(attempt?.duration_ms).toBeLessThan(3_000);
    } finally {
      for (const res of streams) res.destroy();
      await receiver.close();
    }
  });

  it("two workers racing for one attempt send it once", async ({ app, db }) => {
    clock.set(new Date("2026-11-22T00:00:00Z"));
    const receiver = await startWebhookReceiver();
    try {
      const ctx = testContext(db.appSql, { clock });
      const org = await app.createOrg();
      await createEndpoint(app, org.orgKey, receiver.url);
      const deliveries: string[] = [];
      for (let i = 0; i < 10; i++)
        deliveries.push(...(await fanOutEvent(ctx, { eventId: (await ping(db, org.id)) ?? "" })));
      const outcomes = await Promise.all(
        deliveries.flatMap((deliveryId) => [1, 2, 3].map(() => attemptDelivery(ctx, { deliveryId }, options))),
      );
      expect(outcomes.filter((o) => o.outcome === "delivered")).toHaveLength(10);
      expect(outcomes.filter((o) => o.outcome === "not_due")).toHaveLength(20);
      expect(receiver.received).toHaveLength(10);
      expect(new Set(receiver.received.map((r) => r.headers["webhook-id"])).size).toBe(10);
    } finally {
      await receiver.close();
    }
  });

  it("a rotated secret: both sign for 24 hours, then only the new one", async ({ app, db }) => {
    clock.set(new Date("2026-11-23T00:00:00Z"));
    const receiver = await startWebhookReceiver();
    try {
      const ctx = testContext(db.appSql, { clock });
      const org = await app.createOrg();
      const endpoint = await createEndpoint(app, org.orgKey, receiver.url);
      const rotated = await app.call("POST", `/v1/billing/webhooks/${endpoint.id}/rotate-secret`, { key: org.orgKey });
      expect(rotated.status).toBe(200);
      expect(rotated.json.secret).toMatch(/^whsec_/);
      expect(rotated.json.secret).not.toBe(endpoint.secret);
      expect(rotated.json.previous_secret_expires_at).toBe("2026-11-24T00:00:00.000Z");
      const deliver = async () => {
        const [id] = await fanOutEvent(ctx, { eventId: (await ping(db, org.id)) ?? "" });
        expect(await attemptDelivery(ctx, { deliveryId: id ?? "" }, options)).toMatchObject({ outcome: "delivered" });
        return receiver.received.at(-1) as ReceivedWebhook;
      };
      clock.advance(24 * 3_600_000 - 1_000);
      const during = await deliver();
      expect(String(during.headers["webhook-signature"]).split(" ")).toHaveLength(2);
      expect(verifies(rotated.json.secret, during)).toBe(true);
      expect(verifies(endpoint.secret, during)).toBe(true);
      clock.advance(1_000);
      const after = await deliver();
      expect(String(after.headers["webhook-signature"]).split(" ")).toHaveLength(1);
      expect(verifies(rotated.json.secret, after)).toBe(true);
      expect(verifies(endpoint.secret, after)).toBe(false);
      // The secret is never shown again.
      const shown = await app.call("GET", `/v1/billing/webhooks/${endpoint.id}`, { key: org.orgKey });
      expect(shown.text).not.toContain("whsec_");
    } finally {
      await receiver.close();
    }
  });

  it("refuses targets that resolve to private, link-local or metadata addresses, and follows no redirect", async ({
    app,
    db,
  }) => {
    clock.set(new Date("2026-11-24T00:00:00Z"));
    const redirecting = await startWebhookReceiver((_r, _n, res) =>
      res.writeHead(302, { location: "http://169.254.169.254/latest/meta-data/" }).end(),
    );
    try {
      const ctx = testContext(db.appSql, { clock });
      const org = await app.createOrg();
      const refusals: Record<string, string> = {};
      for (const host of [
        "private.example",
        "link-local.example",
        "metadata.example",
        "v6-private.example",
        "mixed.example",
        "mapped.example",
        "compat.example",
        "6to4.example",
        "zone.example",
      ]) {
        // Saved while the name pointed elsewhere (DNS can change after the URL is checked).
        const endpoint = await createEndpoint(app, org.orgKey, `https://${host}/hooks`);
        const [id] = await fanOutEvent(ctx, { eventId: (await ping(db, org.id)) ?? "" });
        expect(id).toBeDefined();
        const outcome = await attemptDelivery(ctx, { deliveryId: id ?? "" }, { ...options, allowLocalhost: false });
        refusals[host] = outcome.outcome === "retry" ? outcome.error : outcome.outcome;
        await app.call("DELETE", `/v1/billing/webhooks/${endpoint.id}`, { key: org.orgKey });
      }
      for (const [host, error] of Object.entries(refusals))
        expect(error, host).toMatch(/^target refused: .* resolves to/);
      expect(refusals["metadata.example"]).toContain("169.254.169.254");

      // Loopback, saved while development allowed it, refused once the flag is off.
      const local = await createEndpoint(app, org.orgKey, redirecting.url);
      const [toLocal] = await fanOutEvent(ctx, { eventId: (await ping(db, org.id)) ?? "" });
      expect(
        await attemptDelivery(ctx, { deliveryId: toLocal ?? "" }, { ...options, allowLocalhost: false }),
      ).toMatchObject({
        outcome: "retry",
        error: expect.stringMatching(/^target refused: 127\.0\.0\.1 resolves to 127\.0\.0\.1 is a private/),
      });
      expect(redirecting.received).toHaveLength(0);
      // Allowed, it answers with a redirect to the metadata address: not followed.
      clock.advance(RETRY_DELAYS_MS[0]);
      expect(await attemptDelivery(ctx, { deliveryId: toLocal ?? "" }, options)).toMatchObject({
        outcome: "retry",
        error: "redirect (302) not followed",
      });
      expect(redirecting.received).toHaveLength(1);
      await app.call("DELETE", `/v1/billing/webhooks/${local.id}`, { key: org.orgKey });
    } finally {
      await redirecting.close();
    }
  });

  it("events committed while no worker ran and Redis lost everything are delivered from the outbox", async ({
    app,
    db,
    redis,
  }) => {
    clock.set(new Date());
    const receiver = await startWebhookReceiver();
    const org = await app.createOrg();
    await createEndpoint(app, org.orgKey, receiver.url);
    // Facts commit; no worker hears their notices, and Redis is flushed before any runs.
    const ids = [];
    for (let i = 0; i < 5; i++) ids.push(await ping(db, org.id));
    await clearRedisPrefix(redis.connection, `{${redis.prefix}}`);
    const workers = await startWorkers({
      sql: db.appSql,
      connection: redis.connection,
      prefix: redis.prefix,
      logger: pino({ level: "silent" }),
      clock: () => new Date(),
      config: app.config,
      maintenanceEveryMs: 300,
      resolve: resolver,
    });
    try {
      await waitFor(() => receiver.received.length >= 5, { what: "the outbox delivered", timeoutMs: 30_000 });
      expect(new Set(receiver.received.map((r) => r.headers["webhook-id"]))).toEqual(new Set(ids));
    } finally {
      await workers.close();
      await receiver.close();
    }
  });
});
