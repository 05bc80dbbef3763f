import { Writable } from "node:stream";
import { pino } from "pino";
import type Stripe from "stripe";
import type { FakeProcessor } from "../../dev/processor/server.js";
import { startWorkers } from "../../src/workers/start-workers.js";
import { TEST_ADMIN_KEY } from "../support/app.js";
import { cardTest, sdkFor } from "../support/fake-processor.js";
import { waitFor } from "../support/process.js";
import type { PaymentsTestApp } from "../support/processor.js";

/** Every log line the workers wrote, parsed. */
export type LogLines = { msg: string; level: number; [k: string]: unknown }[];

/**
 * cardTest (the fake processor, the app on a real port receiving its webhooks, one manual clock)
 * plus the real workers on the file's database and Redis prefix, with the processor client made
 * from the app's config, and their log lines.
 */
export const chargesTest = cardTest.extend<{
  logs: LogLines;
  workers: Awaited<ReturnType<typeof startWorkers>>;
  stripe: Stripe;
}>({
  // biome-ignore lint/correctness/noEmptyPattern: vitest fixtures take their dependencies by destructuring
  logs: [async ({}, use) => use([]), { scope: "file" }],
  stripe: [async ({ processor }, use) => use(sdkFor(processor)), { scope: "file" }],
  workers: [
    async ({ db, redis, app, clock, logs }, use) => {
      const stream = new Writable({
        write(chunk, _enc, done) {
          for (const line of String(chunk).split("\n").filter(Boolean)) logs.push(JSON.parse(line));
          done();
        },
      });
      const workers = await startWorkers({
        sql: db.appSql,
        connection: redis.connection,
        prefix: redis.prefix,
        logger: pino({ level: "info" }, stream),
        clock,
        config: app.config,
        maintenanceEveryMs: 300,
      });
      try {
        await use(workers);
      } finally {
        await workers.close();
      }
    },
    { scope: "file", auto: true },
  ],
});

export type CardOrg = { id: string; orgKey: string; gatewayKey: string; customerId: string; cardId: string };

/** An org with a processor customer at the fake, linked, and a default card (a test card number). */
export async function cardOrg(
  app: PaymentsTestApp,
  processor: FakeProcessor,
  stripe: Stripe,
  card = "4242424242424242",
): Promise<CardOrg> {
  const org = await app.createOrg();
  const gateway = await app.call("POST", "/v1/admin/keys", {
    key: TEST_ADMIN_KEY,
    body: { scope: "gateway", name: "auto-topup gateway" },
  });
  const customer = await stripe.customers.create({ metadata: { test: "auto-topup" } });
  const linked = await app.call("PUT", `/v1/admin/orgs/${org.id}/processor-customer`, {
    key: TEST_ADMIN_KEY,
    body: { customer_id: customer.id },
  });
  if (linked.status !== 201) throw new Error(`link failed: ${linked.text}`);
  const pm = processor.addCard(customer.id, card);
  await stripe.customers.update(customer.id, { invoice_settings: { default_payment_method: pm.id } });
  await waitFor(async () => {
    const res = await app.call("GET", "/v1/billing/payment-methods", { key: org.orgKey });
    return res.json.payment_methods.some((m: { default: boolean }) => m.default);
  });
  return { ...org, gatewayKey: gateway.json.key as string, customerId: customer.id, cardId: pm.id };
}

let n = 0;
/** One usage event costing `dollars` (api requests at 0.0001 USD), at the app's clock. */
export function spend(app: PaymentsTestApp, org: { id: string; gatewayKey: string }, dollars: number) {
  return app.call("POST", "/v1/billing/usage", {
    key: org.gatewayKey,
    body: {
      events: [
        {
          idempotency_key: `spend-${++n}-${Math.random()}`,
          org_id: org.id,
          timestamp: app.clock().toISOString(),
          product: "api",
          quantities: { requests: Math.round(dollars * 10_000) },
        },
      ],
    },
  });
}

export function setAutoTopup(
  app: PaymentsTestApp,
  org: { orgKey: string },
  body: { enabled?: boolean; threshold: string; amount: string; monthly_limit: string },
) {
  return app.call("PUT", "/v1/billing/auto-topup", { key: org.orgKey, body: { enabled: true, ...body } });
}
