import { randomBytes } from "node:crypto";
import Stripe from "stripe";
import type { Config } from "../../src/config.js";
import type { Sql } from "../../src/db/client.js";
import { createTestApp, manualClock, TEST_ADMIN_KEY } from "./app.js";
import { withDatabase } from "./fixtures.js";

/**
 * The card processor cannot be reached from tests, so its side is played here: events are built
 * as the processor builds them and signed with the processor SDK's own test helper. Our side
 * (the route, verification, handlers, database) is the real one.
 */
export const TEST_WEBHOOK_SECRET = `whsec_test${randomBytes(16).toString("hex")}`;
export const WEBHOOK_PATH = "/v1/webhooks/processor";

const alnum = (n: number) => {
  const chars = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";
  return Array.from(randomBytes(n), (b) => chars[b % chars.length]).join("");
};
/** A processor-style id, e.g. pi_3QbCdEf…; letters only, so no run of digits can appear by chance. */
export const processorId = (prefix: "evt" | "pi" | "ch" | "cus" | "pm" | "dp" | "re") => `${prefix}_1Tst${alnum(20)}`;

export type ProcessorEventBody = {
  id: string;
  object: "event";
  api_version: string;
  created: number;
  livemode: boolean;
  pending_webhooks: number;
  request: { id: null; idempotency_key: null };
  type: string;
  data: { object: Record<string, unknown>; previous_attributes?: Record<string, unknown> };
};

export function processorEvent(
  type: string,
  object: Record<string, unknown>,
  opts: { id?: string; created: number; previous_attributes?: Record<string, unknown> },
): ProcessorEventBody {
  return {
    id: opts.id ?? processorId("evt"),
    object: "event",
    api_version: "2025-09-30.clover",
    created: opts.created,
    livemode: false,
    pending_webhooks: 1,
    request: { id: null, idempotency_key: null },
    type,
    data: { object, ...(opts.previous_attributes ? { previous_attributes: opts.previous_attributes } : {}) },
  };
}

export const paymentIntent = (o: {
  id: string;
  customer: string | null;
  cents: number;
  currency?: string;
  charge?: string;
  metadata?: Record<string, string>;
}) => ({
  id: o.id,
  object: "payment_intent",
  amount: o.cents,
  amount_received: o.cents,
  currency: o.currency ?? "usd",
  customer: o.customer,
  latest_charge: o.charge ?? null,
  status: "succeeded",
  metadata: o.metadata ?? {},
  payment_method: processorId("pm"),
});

export const charge = (o: {
  id: string;
  paymentIntent: string | null;
  cents: number;
  refundedCents: number;
  currency?: string;
}) => ({
  id: o.id,
  object: "charge",
  amount: o.cents,
  amount_captured: o.cents,
  amount_refunded: o.refundedCents,
  refunded: o.refundedCents === o.cents,
  currency: o.currency ?? "usd",
  payment_intent: o.paymentIntent,
  // A realistic card block: the 16-digit number itself is never part of any processor object.
  payment_method_details: {
    type: "card",
    card: { brand: "visa", last4: "4242", exp_month: 12, exp_year: 2028, fingerprint: alnum(16) },
  },
});

export const dispute = (o: {
  id: string;
  charge: string;
  paymentIntent: string | null;
  cents: number;
  currency?: string;
  status?: string;
}) => ({
  id: o.id,
  object: "dispute",
  amount: o.cents,
  currency: o.currency ?? "usd",
  charge: o.charge,
  payment_intent: o.paymentIntent,
  reason: "fraudulent",
  status: o.status ?? "needs_response",
});

export const cardPaymentMethod = (o: {
  id: string;
  customer: string | null;
  brand?: string;
  last4?: string;
  expMonth?: number;
  expYear?: number;
  type?: string;
}) => ({
  id: o.id,
  object: "payment_method",
  type: o.type ?? "card",
  customer: o.customer,
  billing_details: {
    email: "billing@example.com",
    name: "Jenny Rosen",
    address: { country: "US", postal_code: "94103" },
  },
  card:
    (o.type ?? "card") === "card"
      ? {
          brand: o.brand ?? "visa",
          last4: o.last4 ?? "4242",
          exp_month: o.expMonth ?? 12,
          exp_year: o.expYear ?? 2028,
          funding: "credit",
          country: "US",
          fingerprint: alnum(16),
        }
      : undefined,
});

export const customer = (o: { id: string; defaultPaymentMethod: string | null }) => ({
  id: o.id,
  object: "customer",
  email: "billing@example.com",
  invoice_settings: { default_payment_method: o.defaultPaymentMethod, custom_fields: null, footer: null },
});

/**
 * The app under test with a webhook secret and a manual clock, whose `call` records every
 * response body so that a file can finally check that none of them leaked a processor id.
 */
export function createPaymentsTestApp(opts: {
  sql: Sql;
  secret?: string | null;
  clock?: ReturnType<typeof manualClock>;
  config?: Partial<Record<keyof Config, string>>;
}) {
  const clock = opts.clock ?? manualClock();
  const t = createTestApp({
    sql: opts.sql,
    clock,
    config: {
      ...(opts.secret === null ? {} : { STRIPE_WEBHOOK_SECRET: opts.secret ?? TEST_WEBHOOK_SECRET }),
      ...opts.config,
    },
  });
  const bodies: string[] = [];
  const call: typeof t.call = async (...args) => {
    const res = await t.call(...args);
    bodies.push(res.text);
    return res;
  };
  const nowSeconds = () => Math.floor(clock().getTime() / 1000);

  /** Signs the exact payload text with the SDK's test helper and posts it as the processor does. */
  async function deliverRaw(payload: string, o: { secret?: string; timestamp?: number; header?: string | null } = {}) {
    const header =
      o.header === undefined
        ? Stripe.webhooks.generateTestHeaderString({
            payload,
            secret: o.secret ?? TEST_WEBHOOK_SECRET,
            timestamp: o.timestamp ?? nowSeconds(),
          })
        : o.header;
    return call("POST", WEBHOOK_PATH, {
      rawBody: payload,
      headers: {
        "content-type": "application/json; charset=utf-8",
        ...(header === null ? {} : { "stripe-signature": header }),
      },
    });
  }

  const deliver = (
    event: ProcessorEventBody,
    o: { secret?: string; timestamp?: number; header?: string | null } = {},
  ) =>
    // Pretty-printed, as the processor sends it: verification must use these exact bytes.
    deliverRaw(JSON.stringify(event, null, 2), o);

  const event = (
    type: string,
    object: Record<string, unknown>,
    o: { id?: string; created?: number; previous_attributes?: Record<string, unknown> } = {},
  ) => processorEvent(type, object, { ...o, created: o.created ?? nowSeconds() });

  async function createOrg(name = "Acme") {
    const org = await call("POST", "/v1/admin/orgs", { key: TEST_ADMIN_KEY, body: { name } });
    const key = await call("POST", `/v1/admin/orgs/${org.json.id}/keys`, {
      key: TEST_ADMIN_KEY,
      body: { scope: "org" },
    });
    return { id: org.json.id as string, orgKey: key.json.key as string };
  }

  /** An organization linked to a fresh processor customer. */
  async function linkedOrg(name = "Acme") {
    const org = await createOrg(name);
    const customerId = processorId("cus");
    const res = await call("PUT", `/v1/admin/orgs/${org.id}/processor-customer`, {
      key: TEST_ADMIN_KEY,
      body: { customer_id: customerId },
    });
    if (res.status !== 201) throw new Error(`link failed: ${res.text}`);
    return { ...org, customerId };
  }

  async function balanceNano(orgKey: string): Promise<bigint> {
    const res = await call("GET", "/v1/billing/balance", { key: orgKey });
    return BigInt(res.json.balance_nano_usd);
  }

  return { ...t, clock, call, bodies, nowSeconds, deliver, deliverRaw, event, createOrg, linkedOrg, balanceNano };
}

/**
 * What must never appear in a response: anything shaped like a card number (13-19 digits in a
 * row), a processor object id or secret by prefix, and the exact processor ids the test used.
 */
export function findLeaks(bodies: string[], processorIds: string[] = []): string[] {
  const leaks: string[] = [];
  const patterns = [/\d{13,19}/, /\b(?:cus|pi|ch|whsec|sk|rk|dp|re|evt|seti|src|tok)_[A-Za-z0-9]/];
  for (const body of bodies) {
    for (const p of patterns) {
      const m = p.exec(body);
      if (m) leaks.push(`${m[0]} in ${body.slice(0, 200)}`);
    }
    for (const id of processorIds) if (body.includes(id)) leaks.push(`${id} in ${body.slice(0, 200)}`);
  }
  return leaks;
}

export type PaymentsTestApp = ReturnType<typeof createPaymentsTestApp>;

/** `app`: the file's app with card top-ups configured, signing and delivering the processor's webhooks. */
export const paymentsTest = withDatabase().extend<{ app: PaymentsTestApp }>({
  app: [async ({ db }, use) => use(createPaymentsTestApp({ sql: db.appSql })), { scope: "file" }],
});
