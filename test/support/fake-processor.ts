import { randomBytes } from "node:crypto";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import Stripe from "stripe";
import { test } from "vitest";
import { serve } from "@hono/node-server";
import { type FakeProcessor, startFakeProcessor } from "../../dev/processor/server.js";
import { manualClock } from "./app.js";
import { withDatabase } from "./fixtures.js";
import { createPaymentsTestApp, type PaymentsTestApp, WEBHOOK_PATH } from "./processor.js";

/** A processor secret key the fake accepts (it checks the shape only). */
export const FAKE_SECRET_KEY = "sk_test_fakeprocessor0123456789";

export function fakeWebhookSecret(): string {
  return `whsec_fake${randomBytes(16).toString("hex")}`;
}

/** The real SDK pointed at a fake processor, with the retries our client factory would use. */
export function sdkFor(processor: FakeProcessor, o: { maxNetworkRetries?: number } = {}): Stripe {
  return new Stripe(FAKE_SECRET_KEY, { ...processor.sdkOptions, maxNetworkRetries: o.maxNetworkRetries ?? 0 });
}

export type ReceivedEvent = { event: Stripe.Event; raw: string };

/**
 * A webhook endpoint for the fake's own tests: verifies each delivery with the SDK and the secret,
 * answers 200 (or what `answer` says), and records what it verified.
 */
export async function startWebhookReceiver(secret: string) {
  const received: ReceivedEvent[] = [];
  const rejected: string[] = [];
  let answer = 200;
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const raw = Buffer.concat(chunks).toString("utf8");
      try {
        const event = Stripe.webhooks.constructEvent(raw, String(req.headers["stripe-signature"]), secret);
        if (answer === 200) received.push({ event, raw });
        res.writeHead(answer).end();
      } catch (err) {
        rejected.push(err instanceof Error ? err.message : String(err));
        res.writeHead(400).end();
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", () => resolve()));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}/hook`,
    received,
    rejected,
    types: () => received.map((r) => r.event.type),
    answerWith(status: number) {
      answer = status;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}

/** `processor`: a fake processor per test, delivering to `receiver`, a verifying webhook endpoint. */
export const processorTest = test.extend<{
  receiver: Awaited<ReturnType<typeof startWebhookReceiver>>;
  processor: FakeProcessor;
  stripe: Stripe;
  webhookSecret: string;
}>({
  // biome-ignore lint/correctness/noEmptyPattern: vitest fixtures take their dependencies by destructuring
  webhookSecret: async ({}, use) => use(fakeWebhookSecret()),
  receiver: async ({ webhookSecret }, use) => {
    const receiver = await startWebhookReceiver(webhookSecret);
    try {
      await use(receiver);
    } finally {
      await receiver.close();
    }
  },
  processor: async ({ receiver, webhookSecret }, use) => {
    const processor = await startFakeProcessor({ webhookUrl: receiver.url, webhookSecret });
    try {
      await use(processor);
    } finally {
      await processor.close();
    }
  },
  stripe: async ({ processor }, use) => use(sdkFor(processor)),
});

/**
 * `processor` and `app` for a file: the fake processor (dev/processor), and the real app with card
 * payments configured against it (STRIPE_SECRET_KEY, STRIPE_API_URL), served on a real port that
 * the fake delivers its signed webhooks to. One manual clock drives both, so signatures and event
 * times follow it. Webhooks are delivered as they happen; `processor.setWebhookMode("hold")` holds them.
 */
export const cardTest = withDatabase().extend<{
  webhookSecret: string;
  clock: ReturnType<typeof manualClock>;
  processor: FakeProcessor;
  app: PaymentsTestApp & { url: string };
}>({
  // biome-ignore lint/correctness/noEmptyPattern: vitest fixtures take their dependencies by destructuring
  webhookSecret: [async ({}, use) => use(fakeWebhookSecret()), { scope: "file" }],
  // biome-ignore lint/correctness/noEmptyPattern: vitest fixtures take their dependencies by destructuring
  clock: [async ({}, use) => use(manualClock()), { scope: "file" }],
  processor: [
    async ({ webhookSecret, clock }, use) => {
      const processor = await startFakeProcessor({ webhookSecret, now: () => Math.floor(clock().getTime() / 1000) });
      try {
        await use(processor);
      } finally {
        await processor.close();
      }
    },
    { scope: "file" },
  ],
  app: [
    async ({ db, processor, webhookSecret, clock }, use) => {
      const app = createPaymentsTestApp({
        sql: db.appSql,
        secret: webhookSecret,
        clock,
        config: { STRIPE_SECRET_KEY: FAKE_SECRET_KEY, STRIPE_API_URL: processor.url, STRIPE_MAX_NETWORK_RETRIES: "0" },
      });
      const { server, url } = await serveApp(app.app.fetch);
      processor.setWebhookUrl(`${url}${WEBHOOK_PATH}`);
      try {
        await use({ ...app, url });
      } finally {
        processor.setWebhookUrl(undefined);
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    },
    { scope: "file" },
  ],
});

/** Serves a fetch handler (the app) on a free local port, for callers that must reach it over HTTP. */
export async function serveApp(fetchHandler: (req: Request) => Response | Promise<Response>) {
  let port = 0;
  const server = await new Promise<ReturnType<typeof serve>>((resolve) => {
    const s = serve({ fetch: fetchHandler, hostname: "127.0.0.1", port: 0 }, (info) => {
      port = info.port;
      resolve(s);
    });
  });
  return { server, url: `http://127.0.0.1:${port}` };
}

export const TOPUP_PATH = "/v1/billing/topups";

/** A valid top-up request body; override what a case changes. */
export const topupBody = (o: Record<string, unknown> = {}) => ({
  amount: "25.00",
  success_url: "https://console.example.com/billing?topup=done",
  cancel_url: "https://console.example.com/billing",
  ...o,
});

let keySeq = 0;
/** POST /v1/billing/topups with an Idempotency-Key (a fresh one unless given). */
export function requestTopup(
  app: PaymentsTestApp,
  orgKey: string,
  body: Record<string, unknown> = topupBody(),
  idempotencyKey = `topup-${process.pid}-${++keySeq}`,
) {
  return app.call("POST", TOPUP_PATH, { key: orgKey, headers: { "idempotency-key": idempotencyKey }, body });
}

/** Pays a Checkout Session on its page as the customer would (a form post with a test card). */
export function payOnPage(url: string, card = "4242424242424242") {
  return fetch(url, { method: "POST", body: new URLSearchParams({ card }), redirect: "manual" });
}
