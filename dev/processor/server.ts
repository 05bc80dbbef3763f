import { createHash, randomBytes } from "node:crypto";
import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo, Socket } from "node:net";
import Stripe from "stripe";
import { type Form, list, parseForm, record, str } from "./form.js";

/**
 * A fake of the card processor (Stripe's API), as a real HTTP server that the real `stripe` SDK
 * talks to through its host/port/protocol options. It keeps just the objects and endpoints the
 * billing code calls, answers as the processor does (objects, list envelopes, error envelopes and
 * status codes, Idempotency-Key replay), and sends each outcome as a webhook event signed with the
 * SDK's own signing and the configured secret. Tests and `npm run dev` use it; billing code never
 * imports it. Everything is in memory: a restart forgets every object.
 *
 * Controls (the handle returned by startFakeProcessor, and a few HTTP routes for `npm run dev`):
 * - a Checkout Session's `url` is a page here: GET shows it, POST (form field `card`, a test card
 *   number) completes it as the customer would; completeCheckout() does the same from a test;
 * - test cards as the processor's: 4242… succeeds, 4000000000000002 is declined, 4000000000009995
 *   is declined for insufficient funds, 4000002760003184 needs the customer (authentication);
 *   `pm_card_visa`, `pm_card_chargeDeclined`, `pm_card_authenticationRequired` attach as those;
 *   setCardBehavior() changes what a saved card does from then on;
 * - faults: the next N requests (or all, matching a path) answer 5xx, or are cut off unanswered
 *   (the SDK sees a connection error), before or after the request took effect;
 * - webhooks: delivered as they happen ("auto", with duplicates if asked), or held until a test
 *   releases them in any order and number of copies; every attempt is logged.
 */

export type CardBehavior = "succeed" | "decline" | "insufficient_funds" | "requires_action";

export type FakeEvent = {
  id: string;
  object: "event";
  api_version: string;
  created: number;
  livemode: false;
  pending_webhooks: number;
  request: { id: string | null; idempotency_key: string | null };
  type: string;
  data: { object: Record<string, unknown>; previous_attributes?: Record<string, unknown> };
};

export type Delivery = { eventId: string; type: string; status: number | "unreachable"; at: Date };

export type Fault = {
  /** `5xx`: answer with this status (default 500) and an api_error; `unreachable`: cut the connection unanswered. */
  kind: "5xx" | "unreachable";
  status?: number;
  /** Only requests whose `METHOD /path` matches. Default: every API request (not the checkout page). */
  match?: RegExp;
  /** How many matching requests fail; default: all of them until clearFaults(). */
  count?: number;
  /** Let the request take effect first, then fail the answer (the caller cannot know it happened). */
  after?: boolean;
};

export type FakeProcessorOptions = {
  /** Where events are POSTed; unset: events are only recorded (see `events`). Can be set later. */
  webhookUrl?: string;
  /** `whsec_…`, the secret the receiver verifies with. */
  webhookSecret: string;
  host?: string;
  /** 0 (default): any free port. */
  port?: number;
  /** "auto" (default): each event is delivered right after the request that caused it answers. */
  webhookMode?: "auto" | "hold";
  /** Delivery attempts per event in auto mode while the receiver fails or is unreachable. */
  webhookAttempts?: number;
  /** The Unix time events and objects carry; default the wall clock. Tests with a manual clock pass theirs. */
  now?: () => number;
  /**
   * For `npm run dev`: a customer id this fake does not know (made by an earlier run, whose
   * objects it forgot, and still linked in the database) is taken as an empty customer instead
   * of 404. Tests leave it off, so a wrong id fails as at the processor.
   */
  adoptUnknownCustomers?: boolean;
};

type Customer = {
  id: string;
  object: "customer";
  created: number;
  email: string | null;
  name: string | null;
  description: string | null;
  metadata: Record<string, string>;
  invoice_settings: { default_payment_method: string | null; custom_fields: null; footer: null };
  livemode: false;
};
type PaymentMethod = {
  id: string;
  object: "payment_method";
  type: "card";
  created: number;
  customer: string | null;
  billing_details: { email: null; name: null; address: null; phone: null };
  card: {
    brand: string;
    last4: string;
    exp_month: number;
    exp_year: number;
    funding: string;
    country: string;
    fingerprint: string;
  };
  metadata: Record<string, string>;
  livemode: false;
};
type PaymentIntent = {
  id: string;
  object: "payment_intent";
  amount: number;
  amount_received: number;
  currency: string;
  customer: string | null;
  payment_method: string | null;
  status: string;
  latest_charge: string | null;
  last_payment_error: Record<string, unknown> | null;
  next_action: Record<string, unknown> | null;
  metadata: Record<string, string>;
  description: string | null;
  off_session: boolean | null;
  created: number;
  livemode: false;
};
type Charge = {
  id: string;
  object: "charge";
  amount: number;
  amount_captured: number;
  amount_refunded: number;
  refunded: boolean;
  currency: string;
  customer: string | null;
  payment_intent: string;
  paid: boolean;
  status: string;
  payment_method: string;
  payment_method_details: {
    type: "card";
    card: { brand: string; last4: string; exp_month: number; exp_year: number; fingerprint: string };
  };
  created: number;
  livemode: false;
};
type Refund = {
  id: string;
  object: "refund";
  amount: number;
  charge: string;
  payment_intent: string;
  currency: string;
  status: "succeeded" | "pending" | "failed" | "canceled";
  reason: string | null;
  metadata: Record<string, string>;
  created: number;
};
type SetupIntent = {
  id: string;
  object: "setup_intent";
  customer: string | null;
  payment_method: string | null;
  status: string;
  usage: string;
  metadata: Record<string, string>;
  created: number;
  livemode: false;
};
type CheckoutSession = {
  id: string;
  object: "checkout.session";
  mode: "payment" | "setup";
  status: "open" | "complete" | "expired";
  payment_status: "unpaid" | "paid" | "no_payment_required";
  customer: string | null;
  client_reference_id: string | null;
  metadata: Record<string, string>;
  amount_total: number | null;
  currency: string | null;
  payment_intent: string | null;
  setup_intent: string | null;
  success_url: string | null;
  cancel_url: string | null;
  url: string | null;
  created: number;
  expires_at: number;
  livemode: false;
};

/** Internal: what a session was asked to put on its PaymentIntent. */
type SessionExtras = { paymentIntentMetadata: Record<string, string>; description: string | null };

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly body: Record<string, unknown>,
  ) {
    super(String(body.message));
  }
}

/** The least a card can be charged in USD, in cents. */
const MIN_USD_CHARGE_CENTS = 50;

const invalid = (message: string, param?: string) =>
  new ApiError(400, { type: "invalid_request_error", message, ...(param ? { param } : {}) });
const missing = (kind: string, id: string, param = "id") =>
  new ApiError(404, {
    type: "invalid_request_error",
    code: "resource_missing",
    message: `No such ${kind}: '${id}'`,
    param,
  });

const ALNUM = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789";
const randomId = (prefix: string, n = 24) =>
  `${prefix}_${Array.from(randomBytes(n), (b) => ALNUM[b % ALNUM.length]).join("")}`;

type TestCard = { brand: string; last4: string; behavior: CardBehavior };
/** The processor's documented test card numbers this fake knows (any other number is refused). */
export const TEST_CARDS: Record<string, TestCard> = {
  "4242424242424242": { brand: "visa", last4: "4242", behavior: "succeed" },
  "5555555555554444": { brand: "mastercard", last4: "4444", behavior: "succeed" },
  "4000000000000002": { brand: "visa", last4: "0002", behavior: "decline" },
  "4000000000009995": { brand: "visa", last4: "9995", behavior: "insufficient_funds" },
  "4000002760003184": { brand: "visa", last4: "3184", behavior: "requires_action" },
};
/** The processor's test PaymentMethod tokens: attaching one makes a new card of that kind. */
const TEST_TOKENS: Record<string, string> = {
  pm_card_visa: "4242424242424242",
  pm_card_mastercard: "5555555555554444",
  pm_card_chargeDeclined: "4000000000000002",
  pm_card_chargeDeclinedInsufficientFunds: "4000000000009995",
  pm_card_authenticationRequired: "4000002760003184",
};

/**
 * The processor's `card.fingerprint`: the same card number always gives the same value (within
 * one processor account, as at the processor), different numbers different values.
 */
export function cardFingerprint(number: string): string {
  const digest = createHash("sha256").update(`card-fingerprint:${number}`).digest();
  return Array.from(digest.subarray(0, 16), (b) => ALNUM[b % ALNUM.length]).join("");
}

type StoredReply = { fingerprint: string; status: number; body: unknown };

export type FakeProcessor = Awaited<ReturnType<typeof startFakeProcessor>>;

export async function startFakeProcessor(options: FakeProcessorOptions) {
  const host = options.host ?? "127.0.0.1";
  const nowSeconds = options.now ?? (() => Math.floor(Date.now() / 1000));
  const customers = new Map<string, Customer>();
  const paymentMethods = new Map<string, PaymentMethod>();
  const behaviors = new Map<string, CardBehavior>();
  const paymentIntents = new Map<string, PaymentIntent>();
  const charges = new Map<string, Charge>();
  const refunds = new Map<string, Refund>();
  const setupIntents = new Map<string, SetupIntent>();
  const sessions = new Map<string, CheckoutSession>();
  const sessionExtras = new Map<string, SessionExtras>();
  const replies = new Map<string, StoredReply>();
  const inFlight = new Set<string>();
  const events: FakeEvent[] = [];
  const held: FakeEvent[] = [];
  const deliveries: Delivery[] = [];
  const requests: { method: string; path: string; idempotencyKey: string | null }[] = [];
  let faults: (Fault & { remaining: number })[] = [];
  let webhookUrl = options.webhookUrl;
  let webhookMode = options.webhookMode ?? "auto";
  let autoDuplicates = 0;
  const attempts = options.webhookAttempts ?? 3;
  const pendingDeliveries = new Set<Promise<unknown>>();
  let deliveryChain: Promise<void> = Promise.resolve();
  const sockets = new Set<Socket>();
  let baseUrl = "";

  // ---- events and webhooks -------------------------------------------------------------------

  /** Events of one request, delivered in order once its answer is sent (as the processor does). */
  let batch: FakeEvent[] | null = null;
  let currentRequest: { id: string; idempotencyKey: string | null } | null = null;

  function emit(type: string, object: object, previous?: Record<string, unknown>): FakeEvent {
    const event: FakeEvent = {
      id: randomId("evt"),
      object: "event",
      api_version: Stripe.API_VERSION,
      created: nowSeconds(),
      livemode: false,
      pending_webhooks: webhookUrl ? 1 : 0,
      request: { id: currentRequest?.id ?? null, idempotency_key: currentRequest?.idempotencyKey ?? null },
      type,
      // A snapshot: later changes to the object must not change what this event said.
      data: {
        object: structuredClone(object) as Record<string, unknown>,
        ...(previous ? { previous_attributes: previous } : {}),
      },
    };
    events.push(event);
    if (batch) batch.push(event);
    else dispatch([event]);
    return event;
  }

  function dispatch(list: FakeEvent[]) {
    if (list.length === 0) return;
    if (webhookMode === "hold") {
      held.push(...list);
      return;
    }
    const copies = 1 + autoDuplicates;
    // One queue for every auto delivery: events arrive in the order they were made (out of order
    // only when a test asks, through hold and release), and a failing receiver is retried first.
    const p = deliveryChain.then(async () => {
      for (const event of list) for (let i = 0; i < copies; i++) await deliverWithRetries(event);
    });
    deliveryChain = p;
    pendingDeliveries.add(p);
    void p.finally(() => pendingDeliveries.delete(p));
  }

  async function deliverWithRetries(event: FakeEvent) {
    for (let attempt = 1; attempt <= attempts; attempt++) {
      const status = await deliver(event);
      if (typeof status === "number" && status >= 200 && status < 300) return;
      if (attempt < attempts) await new Promise((r) => setTimeout(r, 20 * 2 ** attempt));
    }
  }

  /** One signed delivery of one event; the signature is made afresh for each attempt, as the processor does. */
  async function deliver(event: FakeEvent): Promise<number | "unreachable"> {
    if (!webhookUrl) return "unreachable";
    const payload = JSON.stringify(event, null, 2);
    const header = Stripe.webhooks.generateTestHeaderString({
      payload,
      secret: options.webhookSecret,
      timestamp: nowSeconds(),
    });
    let status: number | "unreachable";
    try {
      const res = await fetch(webhookUrl, {
        method: "POST",
        headers: { "content-type": "application/json; charset=utf-8", "stripe-signature": header },
        body: payload,
      });
      await res.arrayBuffer();
      status = res.status;
    } catch {
      status = "unreachable";
    }
    deliveries.push({ eventId: event.id, type: event.type, status, at: new Date() });
    return status;
  }

  // ---- objects -------------------------------------------------------------------------------

  function newCard(number: string, customer: string | null): PaymentMethod {
    const card = TEST_CARDS[number];
    if (!card) {
      throw new ApiError(402, {
        type: "card_error",
        code: "incorrect_number",
        message: "Your card number is incorrect (this fake knows only the processor's test cards).",
      });
    }
    const pm: PaymentMethod = {
      id: randomId("pm"),
      object: "payment_method",
      type: "card",
      created: nowSeconds(),
      customer,
      billing_details: { email: null, name: null, address: null, phone: null },
      card: {
        brand: card.brand,
        last4: card.last4,
        exp_month: 12,
        exp_year: 2034,
        funding: "credit",
        country: "US",
        fingerprint: cardFingerprint(number),
      },
      metadata: {},
      livemode: false,
    };
    paymentMethods.set(pm.id, pm);
    behaviors.set(pm.id, card.behavior);
    return pm;
  }

  function getCustomer(id: string): Customer {
    const c = customers.get(id);
    if (c) return c;
    if (!options.adoptUnknownCustomers || !/^cus_[A-Za-z0-9]{6,}$/.test(id)) throw missing("customer", id);
    const adopted: Customer = {
      id,
      object: "customer",
      created: nowSeconds(),
      email: null,
      name: null,
      description: null,
      metadata: {},
      invoice_settings: { default_payment_method: null, custom_fields: null, footer: null },
      livemode: false,
    };
    customers.set(id, adopted);
    return adopted;
  }

  function getPaymentMethod(id: string): PaymentMethod {
    const pm = paymentMethods.get(id);
    if (!pm) throw missing("PaymentMethod", id, "payment_method");
    return pm;
  }

  function attach(pm: PaymentMethod, customerId: string) {
    getCustomer(customerId);
    if (pm.customer === customerId) return;
    if (pm.customer) throw invalid("The payment method is already attached to another customer.", "payment_method");
    pm.customer = customerId;
    emit("payment_method.attached", pm);
  }

  function detach(pm: PaymentMethod) {
    if (!pm.customer) throw invalid("The payment method is not attached to a customer.", "payment_method");
    const was = pm.customer;
    pm.customer = null;
    const customer = customers.get(was);
    if (customer && customer.invoice_settings.default_payment_method === pm.id) {
      customer.invoice_settings.default_payment_method = null;
      emit("customer.updated", customer, { invoice_settings: { default_payment_method: pm.id } });
    }
    emit("payment_method.detached", pm, { customer: was });
  }

  /**
   * Tries a payment with a card: succeeded with a charge, or the failure the card is made for.
   * `offSession`: the customer is not there, so a card that needs them fails (authentication_required)
   * instead of asking (requires_action).
   */
  function attemptPayment(pi: PaymentIntent, pmId: string, offSession: boolean): ApiError | null {
    const pm = getPaymentMethod(pmId);
    pi.payment_method = pmId;
    const behavior = behaviors.get(pmId) ?? "succeed";
    if (behavior === "succeed") {
      const ch: Charge = {
        id: randomId("ch"),
        object: "charge",
        amount: pi.amount,
        amount_captured: pi.amount,
        amount_refunded: 0,
        refunded: false,
        currency: pi.currency,
        customer: pi.customer,
        payment_intent: pi.id,
        paid: true,
        status: "succeeded",
        payment_method: pmId,
        payment_method_details: {
          type: "card",
          card: {
            brand: pm.card.brand,
            last4: pm.card.last4,
            exp_month: pm.card.exp_month,
            exp_year: pm.card.exp_year,
            fingerprint: pm.card.fingerprint,
          },
        },
        created: nowSeconds(),
        livemode: false,
      };
      charges.set(ch.id, ch);
      pi.status = "succeeded";
      pi.amount_received = pi.amount;
      pi.latest_charge = ch.id;
      pi.last_payment_error = null;
      pi.next_action = null;
      emit("charge.succeeded", ch);
      emit("payment_intent.succeeded", pi);
      return null;
    }
    if (behavior === "requires_action" && !offSession) {
      pi.status = "requires_action";
      pi.next_action = { type: "use_stripe_sdk", use_stripe_sdk: {} };
      emit("payment_intent.requires_action", pi);
      return null;
    }
    const code = behavior === "requires_action" ? "authentication_required" : "card_declined";
    const declineCode =
      behavior === "requires_action"
        ? "authentication_required"
        : behavior === "insufficient_funds"
          ? "insufficient_funds"
          : "generic_decline";
    const error = {
      type: "card_error",
      code,
      decline_code: declineCode,
      message:
        behavior === "requires_action"
          ? "Your card was declined. This transaction requires authentication."
          : behavior === "insufficient_funds"
            ? "Your card has insufficient funds."
            : "Your card was declined.",
      payment_method: structuredClone(pm),
    };
    pi.status = "requires_payment_method";
    pi.last_payment_error = error;
    pi.latest_charge = null;
    emit("payment_intent.payment_failed", pi);
    return new ApiError(402, { ...error, payment_intent: structuredClone(pi) });
  }

  function completeSessionWith(sessionId: string, cardNumber: string): CheckoutSession {
    const session = sessions.get(sessionId);
    if (!session) throw missing("checkout session", sessionId);
    if (session.status !== "open") throw invalid(`This Checkout Session is ${session.status}.`);
    const customer = session.customer;
    if (session.mode === "setup") {
      const pm = newCard(cardNumber, null);
      if (customer) attach(pm, customer);
      const si: SetupIntent = {
        id: randomId("seti"),
        object: "setup_intent",
        customer,
        payment_method: pm.id,
        status: "succeeded",
        usage: "off_session",
        metadata: {},
        created: nowSeconds(),
        livemode: false,
      };
      setupIntents.set(si.id, si);
      emit("setup_intent.succeeded", si);
      session.setup_intent = si.id;
      session.status = "complete";
      session.payment_status = "no_payment_required";
      emit("checkout.session.completed", session);
      return session;
    }
    const extras = sessionExtras.get(session.id);
    const pm = newCard(cardNumber, null);
    // The customer is on the page: a card that asks for authentication gets it there.
    if (behaviors.get(pm.id) === "requires_action") behaviors.set(pm.id, "succeed");
    const pi = session.payment_intent ? paymentIntents.get(session.payment_intent) : undefined;
    const intent =
      pi ??
      newPaymentIntent({
        amount: session.amount_total ?? 0,
        currency: session.currency ?? "usd",
        customer,
        metadata: extras?.paymentIntentMetadata ?? {},
        description: extras?.description ?? null,
        offSession: false,
      });
    session.payment_intent = intent.id;
    const failure = attemptPayment(intent, pm.id, false);
    if (failure) throw failure; // the session stays open: the customer may try another card
    session.status = "complete";
    session.payment_status = "paid";
    emit("checkout.session.completed", session);
    return session;
  }

  function newPaymentIntent(p: {
    amount: number;
    currency: string;
    customer: string | null;
    metadata: Record<string, string>;
    description: string | null;
    offSession: boolean;
  }): PaymentIntent {
    const pi: PaymentIntent = {
      id: randomId("pi"),
      object: "payment_intent",
      amount: p.amount,
      amount_received: 0,
      currency: p.currency,
      customer: p.customer,
      payment_method: null,
      status: "requires_payment_method",
      latest_charge: null,
      last_payment_error: null,
      next_action: null,
      metadata: p.metadata,
      description: p.description,
      off_session: p.offSession,
      created: nowSeconds(),
      livemode: false,
    };
    paymentIntents.set(pi.id, pi);
    return pi;
  }

  const positiveAmount = (value: string | undefined, param: string): number => {
    if (value === undefined) throw invalid(`Missing required param: ${param}.`, param);
    if (!/^\d{1,8}$/.test(value) || Number(value) < 50) {
      throw invalid("Amount must be at least 50 cents and at most 99999999 (integer minor units).", param);
    }
    return Number(value);
  };
  const currencyOf = (value: string | undefined, param: string): string => {
    if (!value || !/^[a-z]{3}$/.test(value)) throw invalid(`Invalid currency: ${value ?? ""}.`, param);
    return value;
  };

  // ---- API routes ----------------------------------------------------------------------------

  type Handler = (m: RegExpMatchArray, form: Form) => { status?: number; body: unknown };
  const routes: [string, RegExp, Handler][] = [
    [
      "POST",
      /^\/v1\/customers$/,
      (_m, f) => {
        const c: Customer = {
          id: randomId("cus", 14),
          object: "customer",
          created: nowSeconds(),
          email: str(f, "email") ?? null,
          name: str(f, "name") ?? null,
          description: str(f, "description") ?? null,
          metadata: record(f.metadata),
          invoice_settings: { default_payment_method: null, custom_fields: null, footer: null },
          livemode: false,
        };
        customers.set(c.id, c);
        emit("customer.created", c);
        return { body: c };
      },
    ],
    ["GET", /^\/v1\/customers\/([^/]+)$/, (m) => ({ body: getCustomer(m[1] as string) })],
    [
      "POST",
      /^\/v1\/customers\/([^/]+)$/,
      (m, f) => {
        const c = getCustomer(m[1] as string);
        const previous: Record<string, unknown> = {};
        const pmId = str(f, "invoice_settings", "default_payment_method");
        if (pmId !== undefined) {
          if (pmId !== "") {
            const pm = getPaymentMethod(pmId);
            if (pm.customer !== c.id) {
              throw invalid(
                `The customer does not have a payment method with the ID ${pmId}.`,
                "invoice_settings[default_payment_method]",
              );
            }
          }
          previous.invoice_settings = { default_payment_method: c.invoice_settings.default_payment_method };
          c.invoice_settings.default_payment_method = pmId === "" ? null : pmId;
        }
        if (f.metadata !== undefined) {
          previous.metadata = { ...c.metadata };
          c.metadata = { ...c.metadata, ...record(f.metadata) };
        }
        for (const field of ["email", "name", "description"] as const) {
          const v = str(f, field);
          if (v !== undefined) {
            previous[field] = c[field];
            c[field] = v;
          }
        }
        if (Object.keys(previous).length > 0) emit("customer.updated", c, previous);
        return { body: c };
      },
    ],
    [
      "GET",
      /^\/v1\/customers\/([^/]+)\/payment_methods$/,
      (m, f) => {
        getCustomer(m[1] as string);
        return { body: listOf(m[0], cardsOf(m[1] as string), f) };
      },
    ],
    [
      "POST",
      /^\/v1\/checkout\/sessions$/,
      (_m, f) => {
        const mode = str(f, "mode");
        if (mode !== "payment" && mode !== "setup") throw invalid("Missing required param: mode.", "mode");
        const successUrl = str(f, "success_url");
        if (!successUrl) throw invalid("Missing required param: success_url.", "success_url");
        const customer = str(f, "customer") ?? null;
        if (customer) getCustomer(customer);
        let amount: number | null = null;
        let currency: string | null = str(f, "currency") ?? null;
        if (mode === "payment") {
          const items = list(f.line_items);
          if (items.length === 0) throw invalid("Missing required param: line_items.", "line_items");
          amount = 0;
          items.forEach((item, i) => {
            const p = `line_items[${i}]`;
            const unit = positiveAmount(str(item, "price_data", "unit_amount"), `${p}[price_data][unit_amount]`);
            const c = currencyOf(str(item, "price_data", "currency"), `${p}[price_data][currency]`);
            if (currency && currency !== c) throw invalid("All line items must have the same currency.", p);
            currency = c;
            const quantity = Number(str(item, "quantity") ?? "1");
            if (!Number.isInteger(quantity) || quantity < 1) throw invalid("Invalid quantity.", `${p}[quantity]`);
            amount = (amount ?? 0) + unit * quantity;
          });
        }
        const id = randomId(mode === "payment" ? "cs_test_a1" : "cs_test_c1", 40);
        const session: CheckoutSession = {
          id,
          object: "checkout.session",
          mode,
          status: "open",
          payment_status: mode === "payment" ? "unpaid" : "no_payment_required",
          customer,
          client_reference_id: str(f, "client_reference_id") ?? null,
          metadata: record(f.metadata),
          amount_total: amount,
          currency,
          payment_intent: null,
          setup_intent: null,
          success_url: successUrl,
          cancel_url: str(f, "cancel_url") ?? null,
          url: `${baseUrl}/checkout/pay/${id}`,
          created: nowSeconds(),
          expires_at: nowSeconds() + 24 * 3600,
          livemode: false,
        };
        sessions.set(id, session);
        sessionExtras.set(id, {
          paymentIntentMetadata: record((f.payment_intent_data as Form | undefined)?.metadata),
          description: str(f, "payment_intent_data", "description") ?? null,
        });
        return { body: session };
      },
    ],
    [
      "GET",
      /^\/v1\/checkout\/sessions\/([^/]+)$/,
      (m) => {
        const s = sessions.get(m[1] as string);
        if (!s) throw missing("checkout.session", m[1] as string);
        return { body: s };
      },
    ],
    ["POST", /^\/v1\/checkout\/sessions\/([^/]+)\/expire$/, (m) => ({ body: expireSession(m[1] as string) })],
    [
      "POST",
      /^\/v1\/payment_intents$/,
      (_m, f) => {
        const customer = str(f, "customer") ?? null;
        if (customer) getCustomer(customer);
        const pmId = str(f, "payment_method");
        const offSession = str(f, "off_session") === "true";
        const confirm = str(f, "confirm") === "true";
        if (offSession && !confirm) throw invalid("off_session can only be used with confirm=true.", "off_session");
        if (pmId) {
          const pm = getPaymentMethod(pmId);
          if (customer && pm.customer !== customer) {
            throw invalid("The provided PaymentMethod does not belong to this customer.", "payment_method");
          }
        }
        const amount = positiveAmount(str(f, "amount"), "amount");
        const currency = currencyOf(str(f, "currency"), "currency");
        // The processor's minimum charge (USD: 50 cents), refused as it refuses it.
        if (currency === "usd" && amount < MIN_USD_CHARGE_CENTS)
          throw new ApiError(400, {
            type: "invalid_request_error",
            code: "amount_too_small",
            message: "Amount must be at least $0.50 usd",
            param: "amount",
          });
        const pi = newPaymentIntent({
          amount,
          currency,
          customer,
          metadata: record(f.metadata),
          description: str(f, "description") ?? null,
          offSession,
        });
        if (pmId) pi.payment_method = pmId;
        emit("payment_intent.created", pi);
        if (confirm) {
          if (!pmId)
            throw invalid("You must provide a payment_method to confirm this PaymentIntent.", "payment_method");
          const failure = attemptPayment(pi, pmId, offSession);
          if (failure) throw failure;
        } else if (pmId) pi.status = "requires_confirmation";
        return { body: pi };
      },
    ],
    [
      "GET",
      /^\/v1\/payment_intents\/([^/]+)$/,
      (m) => {
        const pi = paymentIntents.get(m[1] as string);
        if (!pi) throw missing("payment_intent", m[1] as string);
        return { body: pi };
      },
    ],
    [
      "POST",
      /^\/v1\/setup_intents$/,
      (_m, f) => {
        const customer = str(f, "customer") ?? null;
        if (customer) getCustomer(customer);
        const si: SetupIntent = {
          id: randomId("seti"),
          object: "setup_intent",
          customer,
          payment_method: null,
          status: "requires_payment_method",
          usage: str(f, "usage") ?? "off_session",
          metadata: record(f.metadata),
          created: nowSeconds(),
          livemode: false,
        };
        setupIntents.set(si.id, si);
        emit("setup_intent.created", si);
        return { body: { ...si, client_secret: `${si.id}_secret_${randomId("x").slice(2)}` } };
      },
    ],
    [
      "GET",
      /^\/v1\/setup_intents\/([^/]+)$/,
      (m) => {
        const si = setupIntents.get(m[1] as string);
        if (!si) throw missing("setup_intent", m[1] as string);
        return { body: si };
      },
    ],
    [
      "GET",
      /^\/v1\/payment_methods$/,
      (m, f) => {
        const customer = str(f, "customer");
        if (!customer) throw invalid("Missing required param: customer.", "customer");
        getCustomer(customer);
        return { body: listOf(m[0], cardsOf(customer), f) };
      },
    ],
    [
      "POST",
      /^\/v1\/refunds$/,
      (_m, f) => {
        // As the processor: by payment_intent or charge; the amount defaults to what is left, and
        // more than what is left is refused. The charge's cumulative amount_refunded grows, and
        // refund.created and charge.refunded are sent.
        const piId = str(f, "payment_intent");
        const chargeId = str(f, "charge") ?? (piId ? paymentIntents.get(piId)?.latest_charge : undefined);
        if (!piId && !chargeId) throw invalid("One of `charge` or `payment_intent` is required.");
        const ch = chargeId ? charges.get(chargeId) : undefined;
        if (!ch)
          throw piId
            ? missing("payment_intent", piId, "payment_intent")
            : missing("charge", String(chargeId), "charge");
        if (piId && ch.payment_intent !== piId)
          throw invalid("The charge does not belong to this PaymentIntent.", "charge");
        if (ch.status !== "succeeded")
          throw invalid(`Charge ${ch.id} has not succeeded; it cannot be refunded.`, "charge");
        const left = ch.amount - ch.amount_refunded;
        if (left <= 0)
          throw new ApiError(400, {
            type: "invalid_request_error",
            code: "charge_already_refunded",
            message: `Charge ${ch.id} has already been refunded.`,
          });
        const amount = str(f, "amount") === undefined ? left : positiveAmount(str(f, "amount"), "amount");
        if (amount > left)
          throw invalid(
            `Refund amount ($${(amount / 100).toFixed(2)}) is greater than unrefunded amount on charge ($${(left / 100).toFixed(2)})`,
            "amount",
          );
        const refund: Refund = {
          id: randomId("re"),
          object: "refund",
          amount,
          charge: ch.id,
          payment_intent: ch.payment_intent,
          currency: ch.currency,
          status: "succeeded",
          reason: str(f, "reason") ?? null,
          metadata: record(f.metadata),
          created: nowSeconds(),
        };
        refunds.set(refund.id, refund);
        ch.amount_refunded += amount;
        ch.refunded = ch.amount_refunded === ch.amount;
        emit("refund.created", refund);
        emit("charge.refunded", ch);
        return { body: refund };
      },
    ],
    [
      "GET",
      /^\/v1\/refunds\/([^/]+)$/,
      (m) => {
        const r = refunds.get(m[1] as string);
        if (!r) throw missing("refund", m[1] as string);
        return { body: r };
      },
    ],
    ["GET", /^\/v1\/payment_methods\/([^/]+)$/, (m) => ({ body: getPaymentMethod(m[1] as string) })],
    [
      "POST",
      /^\/v1\/payment_methods\/([^/]+)\/attach$/,
      (m, f) => {
        const customer = str(f, "customer");
        if (!customer) throw invalid("Missing required param: customer.", "customer");
        const id = m[1] as string;
        const token = TEST_TOKENS[id];
        const pm = token ? newCard(token, null) : getPaymentMethod(id);
        attach(pm, customer);
        return { body: pm };
      },
    ],
    [
      "POST",
      /^\/v1\/payment_methods\/([^/]+)\/detach$/,
      (m) => {
        const pm = getPaymentMethod(m[1] as string);
        detach(pm);
        return { body: pm };
      },
    ],
  ];

  function cardsOf(customerId: string): PaymentMethod[] {
    return [...paymentMethods.values()]
      .filter((pm) => pm.customer === customerId)
      .sort((a, b) => b.created - a.created || (a.id < b.id ? -1 : 1));
  }

  /** The processor's list envelope, newest first, paged by `limit` and `starting_after`. */
  function listOf<T extends { id: string }>(url: string, items: T[], f: Form) {
    const limit = Math.min(Math.max(Number(str(f, "limit") ?? "10") || 10, 1), 100);
    const after = str(f, "starting_after");
    const start = after ? items.findIndex((i) => i.id === after) + 1 : 0;
    const page = items.slice(start, start + limit);
    return { object: "list", url, has_more: start + limit < items.length, data: page };
  }

  function expireSession(id: string): CheckoutSession {
    const s = sessions.get(id);
    if (!s) throw missing("checkout.session", id);
    if (s.status !== "open") throw invalid(`Only open sessions can be expired; this one is ${s.status}.`);
    s.status = "expired";
    emit("checkout.session.expired", s);
    return s;
  }

  // ---- the HTTP server -----------------------------------------------------------------------

  function takeFault(method: string, path: string): Fault | null {
    for (const f of faults) {
      if (f.match && !f.match.test(`${method} ${path}`)) continue;
      if (f.remaining <= 0) continue;
      f.remaining--;
      faults = faults.filter((x) => x.remaining > 0);
      return f;
    }
    return null;
  }

  function send(res: ServerResponse, status: number, body: unknown, requestId: string) {
    const text = JSON.stringify(body, null, 2);
    res.writeHead(status, {
      "content-type": "application/json",
      "request-id": requestId,
      "stripe-version": Stripe.API_VERSION,
      "content-length": Buffer.byteLength(text),
    });
    res.end(text);
  }

  async function readBody(req: IncomingMessage): Promise<string> {
    const chunks: Buffer[] = [];
    for await (const chunk of req) chunks.push(chunk as Buffer);
    return Buffer.concat(chunks).toString("utf8");
  }

  async function handleApi(req: IncomingMessage, res: ServerResponse, url: URL) {
    const method = req.method ?? "GET";
    const path = url.pathname;
    const requestId = randomId("req", 14);
    const idempotencyKey = (req.headers["idempotency-key"] as string | undefined) ?? null;
    const text = await readBody(req);
    requests.push({ method, path, idempotencyKey });
    const fault = takeFault(method, path);
    if (fault && !fault.after) return failWith(fault, req, res, requestId);
    if (!/^Bearer sk_(test|live)_\S+$/.test(req.headers.authorization ?? "")) {
      return send(
        res,
        401,
        { error: { type: "invalid_request_error", message: "Invalid API Key provided." } },
        requestId,
      );
    }
    const form = parseForm(method === "GET" || method === "DELETE" ? url.search.slice(1) : text);
    // Idempotency: the same key replays the first answer; reused with other parameters it is refused;
    // while the first request with a key is still running, a second one gets 409.
    const fingerprint = createHash("sha256").update(`${method} ${path} ${text}`).digest("hex");
    if (method === "POST" && idempotencyKey) {
      const stored = replies.get(idempotencyKey);
      if (stored) {
        if (stored.fingerprint !== fingerprint) {
          return send(
            res,
            400,
            {
              error: {
                type: "idempotency_error",
                message: `Keys for idempotent requests can only be used with the same parameters they were first used with. Try using a key other than '${idempotencyKey}' if you meant to execute a different request.`,
              },
            },
            requestId,
          );
        }
        res.setHeader("idempotent-replayed", "true");
        if (fault) return failWith(fault, req, res, requestId);
        return send(res, stored.status, stored.body, requestId);
      }
      if (inFlight.has(idempotencyKey)) {
        return send(
          res,
          409,
          {
            error: {
              type: "idempotency_error",
              code: "idempotency_key_in_use",
              message: "There is currently another in-progress request using this Idempotent Key. Try again later.",
            },
          },
          requestId,
        );
      }
    }
    const route = routes.find(([m, re]) => m === method && re.test(path));
    let status: number;
    let body: unknown;
    batch = [];
    currentRequest = { id: requestId, idempotencyKey };
    try {
      if (!route)
        throw new ApiError(404, {
          type: "invalid_request_error",
          message: `Unrecognized request URL (${method}: ${path}).`,
        });
      const match = path.match(route[1]) as RegExpMatchArray;
      const out = route[2](match, form);
      status = out.status ?? 200;
      body = out.body;
    } catch (err) {
      if (!(err instanceof ApiError)) throw err;
      status = err.status;
      body = { error: { ...err.body, request_log_url: `${baseUrl}/logs/${requestId}` } };
    }
    const emitted = batch;
    batch = null;
    currentRequest = null;
    // Stripe stores the answer to a keyed POST, errors included (but not its 5xx), and replays it.
    const snapshot = structuredClone(body);
    if (method === "POST" && idempotencyKey) replies.set(idempotencyKey, { fingerprint, status, body: snapshot });
    if (fault) {
      dispatch(emitted);
      return failWith(fault, req, res, requestId);
    }
    send(res, status, snapshot, requestId);
    dispatch(emitted);
  }

  function failWith(fault: Fault, req: IncomingMessage, res: ServerResponse, requestId: string) {
    if (fault.kind === "unreachable") {
      req.socket.destroy();
      return;
    }
    res.setHeader("stripe-should-retry", "false");
    send(
      res,
      fault.status ?? 500,
      { error: { type: "api_error", message: "An unknown error occurred (injected by the fake processor)." } },
      requestId,
    );
  }

  const esc = (s: string) => s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);

  async function handleCheckoutPage(req: IncomingMessage, res: ServerResponse, id: string) {
    const session = sessions.get(id);
    if (!session) {
      res.writeHead(404, { "content-type": "text/plain" }).end("no such checkout session");
      return;
    }
    if (req.method === "POST") {
      const form = parseForm(await readBody(req));
      const card = (str(form, "card") ?? "4242424242424242").replace(/\s+/g, "");
      batch = [];
      let failure: ApiError | null = null;
      try {
        completeSessionWith(id, card);
      } catch (err) {
        if (!(err instanceof ApiError)) throw err;
        failure = err;
      }
      const emitted = batch;
      batch = null;
      if (failure) {
        res.writeHead(402, { "content-type": "text/plain; charset=utf-8" }).end(`${failure.message}\n`);
      } else {
        const target = (session.success_url ?? "").replace("{CHECKOUT_SESSION_ID}", session.id);
        res.writeHead(303, { location: target, "content-type": "text/plain" }).end(`paid; go to ${target}\n`);
      }
      dispatch(emitted);
      return;
    }
    const amount =
      session.amount_total === null
        ? ""
        : `${(session.amount_total / 100).toFixed(2)} ${session.currency?.toUpperCase()}`;
    const options = Object.entries(TEST_CARDS)
      .map(([n, c]) => `<option value="${n}">${n} (${c.brand}, ${c.behavior})</option>`)
      .join("");
    res.writeHead(200, { "content-type": "text/html; charset=utf-8" }).end(
      `<!doctype html><title>Fake processor checkout</title>
<h1>${session.mode === "payment" ? `Pay ${esc(amount)}` : "Save a card"}</h1>
<p>Session ${esc(session.id)}: ${esc(session.status)}. This is the development fake of the card processor.</p>
<form method="post"><select name="card">${options}</select> <button>${session.mode === "payment" ? "Pay" : "Save card"}</button></form>
${session.cancel_url ? `<p><a href="${esc(session.cancel_url)}">Cancel</a></p>` : ""}`,
    );
  }

  const server = createServer((req, res) => {
    const url = new URL(req.url ?? "/", "http://fake");
    const page = url.pathname.match(/^\/checkout\/pay\/([^/]+)$/);
    const work = page ? handleCheckoutPage(req, res, page[1] as string) : handleApi(req, res, url);
    work.catch((err: unknown) => {
      if (!res.headersSent) res.writeHead(500, { "content-type": "text/plain" });
      res.end(`fake processor bug: ${err instanceof Error ? err.stack : String(err)}`);
    });
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve, reject) => {
    server.once("error", reject);
    server.listen(options.port ?? 0, host, () => resolve());
  });
  const port = (server.address() as AddressInfo).port;
  baseUrl = `http://${host}:${port}`;

  /** Runs a control as if it were a request: its events are delivered after it, in order. */
  function control<T>(fn: () => T): T {
    batch = [];
    try {
      return fn();
    } finally {
      const emitted = batch;
      batch = null;
      dispatch(emitted);
    }
  }

  return {
    url: baseUrl,
    host,
    port,
    /** The secret its webhook signatures are made with. */
    webhookSecret: options.webhookSecret,
    /** The options the `stripe` SDK needs to talk to this fake. */
    sdkOptions: { host, port, protocol: "http" as const },
    customers,
    paymentMethods,
    paymentIntents,
    charges,
    /** Refunds made through POST /v1/refunds (the `refund()` control below makes none: it plays the dashboard). */
    refunds,
    setupIntents,
    sessions,
    /** Every event made, in order. */
    events,
    /** Every delivery attempt, in order. */
    deliveries,
    /** Every API request received (method, path, Idempotency-Key), in order. */
    requests,

    setWebhookUrl(url: string | undefined) {
      webhookUrl = url;
    },
    /** "hold": events wait in `held` until released; "auto": delivered as they happen. */
    setWebhookMode(mode: "auto" | "hold") {
      webhookMode = mode;
    },
    /** In auto mode, send every event this many extra times (each a fresh signature). */
    setDuplicates(n: number) {
      autoDuplicates = n;
    },
    held(): FakeEvent[] {
      return [...held];
    },
    /**
     * Delivers the held events (or those `pick` keeps) in the order given, `copies` times each, and
     * returns each attempt's HTTP status. The rest stay held.
     */
    async release(
      o: {
        order?: "as_made" | "reverse" | ((events: FakeEvent[]) => FakeEvent[]);
        copies?: number;
        pick?: (e: FakeEvent) => boolean;
      } = {},
    ) {
      const chosen = held.filter(o.pick ?? (() => true));
      for (const e of chosen) held.splice(held.indexOf(e), 1);
      const order = o.order ?? "as_made";
      const ordered = order === "as_made" ? chosen : order === "reverse" ? [...chosen].reverse() : order(chosen);
      const statuses: (number | "unreachable")[] = [];
      for (const e of ordered) for (let i = 0; i < (o.copies ?? 1); i++) statuses.push(await deliver(e));
      return statuses;
    },
    /** Drops held events (all, or those `pick` keeps) undelivered: deliveries that never arrive. */
    discard(pick: (e: FakeEvent) => boolean = () => true): FakeEvent[] {
      const dropped = held.filter(pick);
      for (const e of dropped) held.splice(held.indexOf(e), 1);
      return dropped;
    },
    /** Sends one event (again): a duplicate, or a redelivery. */
    deliver,
    /** Resolves when every auto delivery so far has finished (succeeded or used its attempts). */
    async idle() {
      while (pendingDeliveries.size > 0) await Promise.allSettled([...pendingDeliveries]);
    },

    /** Fails matching requests as described (see Fault); faults stack, first match wins. */
    fail(fault: Fault) {
      faults.push({ ...fault, remaining: fault.count ?? Number.POSITIVE_INFINITY });
    },
    clearFaults() {
      faults = [];
    },

    /** Completes a Checkout Session as the customer would on its page, with a test card number. */
    completeCheckout(sessionId: string, card = "4242424242424242") {
      return control(() => completeSessionWith(sessionId, card));
    },
    expireCheckout(sessionId: string) {
      return control(() => expireSession(sessionId));
    },
    /** Saves a test card on a customer, as a setup session would (payment_method.attached). */
    addCard(customerId: string, card = "4242424242424242"): PaymentMethod {
      return control(() => {
        const pm = newCard(card, null);
        attach(pm, customerId);
        return pm;
      });
    },
    /** What a saved card does from now on (e.g. a card that starts being declined). */
    setCardBehavior(paymentMethodId: string, behavior: CardBehavior) {
      getPaymentMethod(paymentMethodId);
      behaviors.set(paymentMethodId, behavior);
    },
    /** Refunds (part of) a succeeded payment: charge.refunded with the charge's cumulative amount. */
    refund(paymentIntentId: string, cents?: number) {
      return control(() => {
        const pi = paymentIntents.get(paymentIntentId);
        const ch = pi?.latest_charge ? charges.get(pi.latest_charge) : undefined;
        if (!pi || !ch) throw new Error(`no succeeded payment ${paymentIntentId}`);
        ch.amount_refunded = Math.min(ch.amount, ch.amount_refunded + (cents ?? ch.amount - ch.amount_refunded));
        ch.refunded = ch.amount_refunded === ch.amount;
        emit("charge.refunded", ch);
        return ch;
      });
    },
    /** Opens a dispute on a succeeded payment (charge.dispute.created). */
    dispute(paymentIntentId: string) {
      return control(() => {
        const pi = paymentIntents.get(paymentIntentId);
        const ch = pi?.latest_charge ? charges.get(pi.latest_charge) : undefined;
        if (!pi || !ch) throw new Error(`no succeeded payment ${paymentIntentId}`);
        const dp = {
          id: randomId("dp"),
          object: "dispute",
          amount: ch.amount,
          currency: ch.currency,
          charge: ch.id,
          payment_intent: pi.id,
          reason: "fraudulent",
          status: "needs_response",
          created: nowSeconds(),
          livemode: false,
        };
        emit("charge.dispute.created", dp);
        return dp;
      });
    },

    async close() {
      await new Promise<void>((resolve) => {
        server.close(() => resolve());
        for (const s of sockets) s.destroy();
      });
      await Promise.allSettled([...pendingDeliveries]);
    },
  };
}
