import { QueueEvents } from "bullmq";
import { pino } from "pino";
import { describe, expect } from "vitest";
import { emitEvent } from "../../src/billing/events/emit.js";
import { bullPrefix, QueueNames } from "../../src/jobs/queues.js";
import { startWorkers } from "../../src/workers/start-workers.js";
import { manualClock } from "../support/app.js";
import { type AppContext, appTest as it } from "../support/fixtures.js";
import { waitFor } from "../support/process.js";
import { createTestRedis } from "../support/redis.js";
import { startWebhookReceiver } from "../support/webhook-receiver.js";

/**
 * "Nothing lost" (README, Webhooks): a fan-out or delivery job that fails (PostgreSQL refusing a
 * write for a moment, as in a failover) is made again by the sweep. Its job id is fixed (`fan-<event>`,
 * `<delivery>-<attempts>`); had BullMQ kept the failed job under that id, the sweep's add of the
 * same id would have done nothing, and the event stayed undelivered for good (helper-88).
 */
const clock = manualClock(new Date());

/** Workers sweeping every 300 ms, a receiver, an org with an endpoint there, and the ids of the jobs that failed for good. */
async function webhookStack({ app, db, redis }: Pick<AppContext, "app" | "db" | "redis">) {
  const receiver = await startWebhookReceiver();
  const eventsRedis = createTestRedis();
  const queueEvents = new QueueEvents(QueueNames.webhooks, {
    connection: eventsRedis,
    prefix: bullPrefix(redis.prefix),
  });
  const failed: string[] = [];
  queueEvents.on("failed", ({ jobId }) => void failed.push(jobId));
  await queueEvents.waitUntilReady();
  const workers = await startWorkers({
    sql: db.appSql,
    connection: redis.connection,
    prefix: redis.prefix,
    logger: pino({ level: "silent" }),
    clock,
    config: app.config,
    maintenanceEveryMs: 300,
    resolve: async () => ["127.0.0.1"],
  });
  const org = await app.createOrg();
  const made = await app.call("POST", "/v1/billing/webhooks", { key: org.orgKey, body: { url: receiver.url } });
  expect(made.status, made.text).toBe(201);
  const emit = (factKey: string) =>
    db.appSql.begin((tx) =>
      emitEvent(tx, {
        orgId: org.id,
        type: "balance.depleted",
        factKey,
        data: { balance: 0, balance_usd: "0", balance_nano_usd: "0", transaction_id: `txn_${factKey}` },
        at: clock(),
      }),
    );
  const close = async () => {
    await workers.close();
    await queueEvents.close();
    eventsRedis.disconnect();
    await receiver.close();
  };
  return { receiver, failed, emit, close };
}

describe("a webhook job that failed", () => {
  it.scoped({ dbOptions: { max: 10 }, appOptions: { clock, config: { WEBHOOK_ALLOW_LOCALHOST: "true" } } });

  it("a delivery whose attempt could not be recorded is sent again by the sweep once its claim lapses", async ({
    app,
    db,
    redis,
  }) => {
    const stack = await webhookStack({ app, db, redis });
    try {
      await db.sql`revoke insert on webhook_attempts from hanzo_app`;
      const eventId = await stack.emit("transient-1");
      // Sent, then its attempt refused: the job fails.
      await waitFor(() => stack.receiver.received.length === 1 && stack.failed.length > 0, {
        what: "the send and its job failing",
      });
      await db.sql`grant insert on webhook_attempts to hanzo_app`;
      // Past the claim (the send's timeout and its margin); the sweep finds the attempt due.
      clock.advance(app.config.WEBHOOK_TIMEOUT_MS + 31_000);
      const deliveryOf = async () =>
        (
          await db.sql<{ status: string; attempts: number }[]>`
            select status, attempts from webhook_deliveries where event_id = ${eventId}`
        )[0];
      await waitFor(async () => (await deliveryOf())?.status === "delivered", { what: "the delivery, sent again" });
      expect({ ...(await deliveryOf()), sends: stack.receiver.received.length }).toEqual({
        status: "delivered",
        attempts: 1,
        sends: 2,
      });
    } finally {
      await db.sql`grant insert on webhook_attempts to hanzo_app`;
      await stack.close();
    }
  });

  it("an event whose fan-out job used up its tries is fanned out by the sweep once it can be", async ({
    app,
    db,
    redis,
  }) => {
    const stack = await webhookStack({ app, db, redis });
    try {
      await db.sql`revoke insert on webhook_deliveries from hanzo_app`;
      const eventId = await stack.emit("transient-fan-1");
      // Its five tries (1 + 2 + 4 + 8 s of backoff) fail.
      await waitFor(() => stack.failed.includes(`fan-${eventId}`), {
        what: "the fan-out job failing for good",
        timeoutMs: 60_000,
      });
      expect(stack.receiver.received).toHaveLength(0);
      await db.sql`grant insert on webhook_deliveries to hanzo_app`;
      await waitFor(() => stack.receiver.received.length === 1, { what: "the event fanned out by the sweep and sent" });
      const [event] = await db.sql<{ fanned_out_at: Date | null }[]>`
        select fanned_out_at from billing_events where id = ${eventId}`;
      expect(event?.fanned_out_at).not.toBeNull();
    } finally {
      await db.sql`grant insert on webhook_deliveries to hanzo_app`;
      await stack.close();
    }
  }, 120_000);
});
