import Stripe from "stripe";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import {
  createPaymentsTestApp,
  paymentIntent,
  processorId,
  TEST_WEBHOOK_SECRET,
  WEBHOOK_PATH,
} from "../support/processor.js";
// After the app: the processor's object schemas are extended for OpenAPI by the routes that import them.
import { PROCESSOR_EVENT_MAX_BYTES } from "../../src/billing/payments/signature.js";

/**
 * The webhook reads at most what a processor event needs before it verifies the signature: a
 * delivery without a signature is answered before its body is read, and a body larger than
 * PROCESSOR_EVENT_MAX_BYTES is refused after reading no more than that.
 */
describe("POST /v1/webhooks/processor: what is read before the signature is checked", () => {
  let db: TestDatabase;
  let t: ReturnType<typeof createPaymentsTestApp>;
  beforeAll(async () => {
    db = await createTestDatabase();
    t = createPaymentsTestApp({ sql: db.sql });
  });
  afterAll(() => db.drop());

  /** A request body that yields 64 KiB chunks for as long as it is read, counting what was pulled. */
  function endlessBody() {
    const chunk = new TextEncoder().encode(`{"pad":"${"x".repeat(64 * 1024 - 9)}`);
    const stream = new ReadableStream<Uint8Array>({
      pull(controller) {
        pulled.bytes += chunk.length;
        controller.enqueue(chunk);
      },
    });
    const pulled = { bytes: 0, stream };
    return pulled;
  }
  const post = (body: ReadableStream<Uint8Array>, headers: Record<string, string>) =>
    t.app.request(WEBHOOK_PATH, {
      method: "POST",
      body,
      headers: { "content-type": "application/json", ...headers },
      duplex: "half",
    } as RequestInit);

  it("a delivery without Stripe-Signature is refused before its body is read (the body never ends)", async () => {
    const body = endlessBody();
    const res = await post(body.stream, {});
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: Record<string, unknown> }).error.code).toBe("invalid_signature");
    expect(body.bytes).toBeLessThanOrEqual(2 * 64 * 1024); // what the stream buffered ahead, never read
  });

  it("a signed delivery larger than a processor event is 413 after reading at most the limit", async () => {
    const body = endlessBody();
    const header = Stripe.webhooks.generateTestHeaderString({
      payload: "{}",
      secret: TEST_WEBHOOK_SECRET,
      timestamp: t.nowSeconds(),
    });
    const res = await post(body.stream, { "stripe-signature": header });
    expect(res.status).toBe(413);
    expect(((await res.json()) as { error: Record<string, unknown> }).error).toMatchObject({
      code: "payload_too_large",
      request_id: expect.any(String),
    });
    expect(body.bytes).toBeLessThanOrEqual(PROCESSOR_EVENT_MAX_BYTES + 2 * 64 * 1024);
  });

  it("a declared Content-Length over the limit is refused unread; an event just under it is handled", async () => {
    const padded = (bytes: number) => {
      const event = t.event(
        "payment_intent.succeeded",
        paymentIntent({ id: processorId("pi"), customer: processorId("cus"), cents: 500 }),
      );
      const base = JSON.stringify(event).length;
      return JSON.stringify({ ...event, padding: "x".repeat(bytes - base - 13) });
    };
    const over = padded(PROCESSOR_EVENT_MAX_BYTES + 1);
    const sign = (payload: string) =>
      Stripe.webhooks.generateTestHeaderString({ payload, secret: TEST_WEBHOOK_SECRET, timestamp: t.nowSeconds() });
    const tooBig = await t.call("POST", WEBHOOK_PATH, {
      rawBody: over,
      headers: { "stripe-signature": sign(over), "content-length": String(Buffer.byteLength(over)) },
    });
    expect(tooBig.status, tooBig.text).toBe(413);
    const under = padded(PROCESSOR_EVENT_MAX_BYTES);
    expect(Buffer.byteLength(under)).toBe(PROCESSOR_EVENT_MAX_BYTES);
    const handled = await t.call("POST", WEBHOOK_PATH, {
      rawBody: under,
      headers: { "stripe-signature": sign(under) },
    });
    expect(handled.status, handled.text).toBe(200);
  });
});
