import Stripe from "stripe";
import { describe, expect } from "vitest";
import { processorTest as it, sdkFor } from "../support/fake-processor.js";

/**
 * The fake card processor (dev/processor) as the real `stripe` SDK sees it over HTTP: objects,
 * errors and idempotency as the processor answers them, signed webhooks for each outcome, and the
 * controls the billing tests use (faults, held, reordered and duplicated deliveries).
 */

const pay = (url: string, card: string) =>
  fetch(url, { method: "POST", body: new URLSearchParams({ card }), redirect: "manual" });

describe("checkout", () => {
  it("a payment session paid on its page succeeds, redirects, and sends signed events", async ({
    stripe,
    processor,
    receiver,
  }) => {
    const customer = await stripe.customers.create({ metadata: { org_id: "org_1" } });
    const session = await stripe.checkout.sessions.create({
      mode: "payment",
      customer: customer.id,
      line_items: [
        { quantity: 1, price_data: { currency: "usd", unit_amount: 2500, product_data: { name: "Credits" } } },
      ],
      success_url: "https://example.com/ok?s={CHECKOUT_SESSION_ID}",
      cancel_url: "https://example.com/cancel",
      metadata: { topup_id: "top_1" },
      payment_intent_data: { metadata: { topup_id: "top_1" } },
    });
    expect(session).toMatchObject({ status: "open", payment_status: "unpaid", amount_total: 2500, currency: "usd" });
    expect(session.url).toMatch(new RegExp(`^${processor.url}/checkout/pay/cs_test_`));
    const page = await fetch(session.url as string);
    expect(await page.text()).toContain("Pay 25.00 USD");

    const res = await pay(session.url as string, "4242424242424242");
    expect(res.status).toBe(303);
    expect(res.headers.get("location")).toBe(`https://example.com/ok?s=${session.id}`);
    await processor.idle();
    expect(receiver.rejected).toEqual([]);
    expect(receiver.types()).toEqual([
      "customer.created",
      "charge.succeeded",
      "payment_intent.succeeded",
      "checkout.session.completed",
    ]);
    const completed = receiver.received[3]?.event.data.object as Stripe.Checkout.Session;
    expect(completed).toMatchObject({
      id: session.id,
      status: "complete",
      payment_status: "paid",
      customer: customer.id,
    });
    const pi = await stripe.paymentIntents.retrieve(completed.payment_intent as string);
    expect(pi).toMatchObject({
      status: "succeeded",
      amount_received: 2500,
      customer: customer.id,
      metadata: { topup_id: "top_1" },
    });
    expect((await stripe.checkout.sessions.retrieve(session.id)).status).toBe("complete");
    // Paid once: the page refuses a second payment.
    expect((await pay(session.url as string, "4242424242424242")).status).toBe(402);
  });

  it("a declined card leaves the session open and sends payment_intent.payment_failed", async ({
    stripe,
    processor,
    receiver,
  }) => {
    const customer = await stripe.customers.create();
    const session = await stripe.checkout.sessions.create({
      mode: "payment",
      customer: customer.id,
      line_items: [{ quantity: 1, price_data: { currency: "usd", unit_amount: 500, product_data: { name: "x" } } }],
      success_url: "https://example.com/ok",
    });
    expect((await pay(session.url as string, "4000000000000002")).status).toBe(402);
    expect(processor.sessions.get(session.id)?.status).toBe("open");
    // The customer tries another card: the same payment succeeds.
    const done = processor.completeCheckout(session.id);
    await processor.idle();
    expect(done.payment_status).toBe("paid");
    expect(receiver.types()).toEqual([
      "customer.created",
      "payment_intent.payment_failed",
      "charge.succeeded",
      "payment_intent.succeeded",
      "checkout.session.completed",
    ]);
  });

  it("a setup session saves the card on the customer; the default is set through the customer", async ({
    stripe,
    processor,
    receiver,
  }) => {
    const customer = await stripe.customers.create();
    const session = await stripe.checkout.sessions.create({
      mode: "setup",
      customer: customer.id,
      currency: "usd",
      success_url: "https://example.com/ok",
    });
    expect((await pay(session.url as string, "5555555555554444")).status).toBe(303);
    const cards = await stripe.paymentMethods.list({ customer: customer.id, type: "card" });
    expect(cards.data.map((c) => c.card?.last4)).toEqual(["4444"]);
    const pm = cards.data[0] as Stripe.PaymentMethod;
    await stripe.customers.update(customer.id, { invoice_settings: { default_payment_method: pm.id } });
    expect((await stripe.customers.retrieve(customer.id)) as Stripe.Customer).toMatchObject({
      invoice_settings: { default_payment_method: pm.id },
    });
    await stripe.paymentMethods.detach(pm.id);
    expect((await stripe.customers.listPaymentMethods(customer.id)).data).toEqual([]);
    await processor.idle();
    expect(receiver.types()).toEqual([
      "customer.created",
      "payment_method.attached",
      "setup_intent.succeeded",
      "checkout.session.completed",
      "customer.updated",
      "customer.updated",
      "payment_method.detached",
    ]);
    const detached = receiver.received.at(-1)?.event as Stripe.Event;
    expect(detached.data.previous_attributes).toEqual({ customer: customer.id });
    // A card of another customer cannot become this one's default.
    const other = await stripe.customers.create();
    const foreign = await stripe.paymentMethods.attach("pm_card_visa", { customer: other.id });
    await expect(
      stripe.customers.update(customer.id, { invoice_settings: { default_payment_method: foreign.id } }),
    ).rejects.toBeInstanceOf(Stripe.errors.StripeInvalidRequestError);
  });
});

describe("off-session payments", () => {
  it.for([
    { card: "pm_card_visa", status: "succeeded", error: null, event: "payment_intent.succeeded" },
    {
      card: "pm_card_chargeDeclined",
      status: "requires_payment_method",
      error: "card_declined",
      event: "payment_intent.payment_failed",
    },
    {
      card: "pm_card_chargeDeclinedInsufficientFunds",
      status: "requires_payment_method",
      error: "card_declined",
      event: "payment_intent.payment_failed",
    },
    {
      card: "pm_card_authenticationRequired",
      status: "requires_payment_method",
      error: "authentication_required",
      event: "payment_intent.payment_failed",
    },
  ])("$card → $status ($error)", async ({ card, status, error, event }, { stripe, processor, receiver }) => {
    const customer = await stripe.customers.create();
    const pm = await stripe.paymentMethods.attach(card, { customer: customer.id });
    const create = () =>
      stripe.paymentIntents.create(
        {
          amount: 1000,
          currency: "usd",
          customer: customer.id,
          payment_method: pm.id,
          off_session: true,
          confirm: true,
        },
        { idempotencyKey: `crossing-${card}` },
      );
    let pi: Stripe.PaymentIntent;
    if (error) {
      const err = await create().catch((e: unknown) => e);
      expect(err).toBeInstanceOf(Stripe.errors.StripeCardError);
      const cardError = err as Stripe.errors.StripeCardError;
      expect(cardError.code).toBe(error);
      pi = cardError.payment_intent as Stripe.PaymentIntent;
    } else pi = await create();
    expect(pi.status).toBe(status);
    expect((await stripe.paymentIntents.retrieve(pi.id)).status).toBe(status);
    // The same key replays the first answer, error included: one payment, one set of events.
    const again = await create().catch((e: unknown) => (e as Stripe.errors.StripeCardError).payment_intent);
    expect(again?.id).toBe(pi.id);
    expect(processor.paymentIntents.size).toBe(1);
    await processor.idle();
    expect(receiver.types().filter((t) => t === event)).toHaveLength(1);
  });

  it("a card that needs its holder asks for action on session, and a card can change behaviour", async ({
    stripe,
    processor,
  }) => {
    const customer = await stripe.customers.create();
    const pm = await stripe.paymentMethods.attach("pm_card_authenticationRequired", { customer: customer.id });
    const pi = await stripe.paymentIntents.create({
      amount: 700,
      currency: "usd",
      customer: customer.id,
      payment_method: pm.id,
      confirm: true,
    });
    expect(pi.status).toBe("requires_action");
    const visa = processor.addCard(customer.id);
    processor.setCardBehavior(visa.id, "decline");
    await expect(
      stripe.paymentIntents.create({
        amount: 700,
        currency: "usd",
        customer: customer.id,
        payment_method: visa.id,
        off_session: true,
        confirm: true,
      }),
    ).rejects.toMatchObject({ code: "card_declined", decline_code: "generic_decline" });
  });

  it("an idempotency key reused with other parameters is refused; unknown objects are 404", async ({ stripe }) => {
    const customer = await stripe.customers.create({}, { idempotencyKey: "k1" });
    expect((await stripe.customers.create({}, { idempotencyKey: "k1" })).id).toBe(customer.id);
    await expect(stripe.customers.create({ email: "a@example.com" }, { idempotencyKey: "k1" })).rejects.toBeInstanceOf(
      Stripe.errors.StripeIdempotencyError,
    );
    await expect(stripe.customers.retrieve("cus_nope")).rejects.toMatchObject({
      statusCode: 404,
      code: "resource_missing",
    });
    await expect(stripe.setupIntents.create({ customer: customer.id })).resolves.toMatchObject({
      status: "requires_payment_method",
    });
  });
});

describe("faults", () => {
  it("5xx and unreachable answers reach the SDK as API and connection errors", async ({ processor }) => {
    const stripe = sdkFor(processor);
    processor.fail({ kind: "5xx", status: 503, count: 1 });
    await expect(stripe.customers.create()).rejects.toBeInstanceOf(Stripe.errors.StripeAPIError);
    processor.fail({ kind: "unreachable", match: /^POST \/v1\/checkout/ });
    const customer = await stripe.customers.create();
    await expect(
      stripe.checkout.sessions.create({
        mode: "setup",
        customer: customer.id,
        currency: "usd",
        success_url: "https://e.x/",
      }),
    ).rejects.toBeInstanceOf(Stripe.errors.StripeConnectionError);
    processor.clearFaults();
    expect(processor.sessions.size).toBe(0);
  });

  it("a failure after the effect, retried by the SDK with its key, makes the object once", async ({ processor }) => {
    const stripe = sdkFor(processor, { maxNetworkRetries: 2 });
    processor.fail({ kind: "unreachable", count: 1, after: true });
    const customer = await stripe.customers.create({ metadata: { org_id: "org_1" } });
    expect(processor.customers.size).toBe(1);
    expect([...processor.customers.keys()]).toEqual([customer.id]);
    // Two requests, one key (the SDK's own).
    const keys = processor.requests.map((r) => r.idempotencyKey);
    expect(keys).toHaveLength(2);
    expect(keys[0]).toBeTruthy();
    expect(keys[1]).toBe(keys[0]);
  });
});

describe("webhook deliveries", () => {
  it("held events are released reversed and duplicated, each copy freshly signed", async ({
    stripe,
    processor,
    receiver,
  }) => {
    processor.setWebhookMode("hold");
    const customer = await stripe.customers.create();
    const session = await stripe.checkout.sessions.create({
      mode: "payment",
      customer: customer.id,
      line_items: [{ quantity: 2, price_data: { currency: "usd", unit_amount: 500, product_data: { name: "x" } } }],
      success_url: "https://example.com/ok",
    });
    processor.completeCheckout(session.id);
    expect(receiver.received).toEqual([]);
    expect(processor.held().map((e) => e.type)).toEqual([
      "customer.created",
      "charge.succeeded",
      "payment_intent.succeeded",
      "checkout.session.completed",
    ]);
    const statuses = await processor.release({
      order: "reverse",
      copies: 2,
      pick: (e) => e.type !== "customer.created",
    });
    expect(statuses).toEqual([200, 200, 200, 200, 200, 200]);
    expect(receiver.types()).toEqual([
      "checkout.session.completed",
      "checkout.session.completed",
      "payment_intent.succeeded",
      "payment_intent.succeeded",
      "charge.succeeded",
      "charge.succeeded",
    ]);
    expect(processor.held().map((e) => e.type)).toEqual(["customer.created"]);
    const first = receiver.received[0];
    expect((first?.event.data.object as Stripe.Checkout.Session | undefined)?.amount_total).toBe(1000);
  });

  it("auto deliveries retry a failing receiver and can send duplicates", async ({ stripe, processor, receiver }) => {
    receiver.answerWith(500);
    await stripe.customers.create();
    await processor.idle();
    expect(processor.deliveries.map((d) => d.status)).toEqual([500, 500, 500]);
    receiver.answerWith(200);
    processor.setDuplicates(1);
    await stripe.customers.create();
    await processor.idle();
    expect(receiver.types()).toEqual(["customer.created", "customer.created"]);
    expect(receiver.received[0]?.event.id).toBe(receiver.received[1]?.event.id);
  });
});
