import { z } from "zod";

/**
 * The parts of the processor's (Stripe-compatible) objects we read, and nothing more: unknown
 * fields are dropped on parse, so billing details and the like are never stored or logged by
 * accident. Amounts are integer minor units (cents) in JSON; they stay far below 2^53, so the
 * parsed number is exact and becomes a bigint before any arithmetic.
 */

const processorId = (prefix: string) =>
  z.string().regex(new RegExp(`^${prefix}_[A-Za-z0-9_]{1,250}$`), `must be a ${prefix}_… id`);

/** Expandable fields arrive as an id or as the expanded object; we only ever need the id. */
const ref = (prefix: string) =>
  z
    .union([processorId(prefix), z.object({ id: processorId(prefix) })])
    .transform((v) => (typeof v === "string" ? v : v.id));

// Stripe's largest charge is 99,999,999 minor units; anything beyond is not a real payment.
const minorAmount = z.number().int().min(0).max(99_999_999);
const currency = z.string().regex(/^[a-z]{3}$/);

/**
 * The last second of year 9999 (UTC): every `created` up to it is a valid Date and timestamptz. A
 * larger one (JS Dates end near 8.64e12 s) is no processor's, and could not be recorded.
 */
export const MAX_EVENT_CREATED = 253_402_300_799;

export const ProcessorEvent = z.object({
  id: processorId("evt"),
  type: z.string().min(1).max(100),
  created: z.number().int().min(0).max(MAX_EVENT_CREATED),
  livemode: z.boolean(),
  data: z.object({
    object: z.record(z.string(), z.unknown()),
    previous_attributes: z.record(z.string(), z.unknown()).optional(),
  }),
});
export type ProcessorEvent = z.infer<typeof ProcessorEvent>;

export const PaymentIntent = z.object({
  id: processorId("pi"),
  amount_received: minorAmount,
  currency,
  customer: ref("cus").nullish(),
  latest_charge: ref("ch").nullish(),
  // Only to find what a payment belongs to: the checkout top-up, or a charge we started (auto
  // top-up, renewal). Its org is always the customer's link's, never the metadata's.
  metadata: z
    .object({
      topup_id: z.string().max(64).optional(),
      hanzo_auto_topup_charge: z.string().max(64).optional(),
      hanzo_renewal_charge: z.string().max(64).optional(),
    })
    .nullish(),
});
export type PaymentIntent = z.infer<typeof PaymentIntent>;

/** A payment_intent.payment_failed object: why it failed, when the processor says. */
export const FailedPaymentIntent = PaymentIntent.extend({
  last_payment_error: z
    .object({ code: z.string().max(100).nullish(), decline_code: z.string().max(100).nullish() })
    .nullish(),
});

export const Charge = z.object({
  id: processorId("ch"),
  payment_intent: ref("pi").nullish(),
  amount_refunded: minorAmount,
  currency,
});
export type Charge = z.infer<typeof Charge>;

/**
 * A charge.succeeded object: whose it is, the card's fingerprint (a self-referral signal), and its
 * payment (so that a refund or dispute naming only the charge finds the payment), nothing more.
 */
export const SucceededCharge = z.object({
  id: processorId("ch"),
  payment_intent: ref("pi").nullish(),
  customer: ref("cus").nullish(),
  payment_method_details: z
    .object({
      card: z
        .object({
          fingerprint: z
            .string()
            .regex(/^[A-Za-z0-9_-]{1,64}$/)
            .nullish(),
        })
        .nullish(),
    })
    .nullish(),
});

export const Dispute = z.object({
  id: z.union([processorId("dp"), processorId("du")]),
  amount: minorAmount,
  currency,
  charge: ref("ch"),
  payment_intent: ref("pi").nullish(),
  // needs_response, won, lost, warning_closed, …: read by charge.dispute.closed
  status: z.string().max(64).optional(),
});
export type Dispute = z.infer<typeof Dispute>;

export const PaymentMethod = z.object({
  id: processorId("pm"),
  type: z.string().max(64),
  customer: ref("cus").nullish(),
  card: z
    .object({
      brand: z.string().regex(/^[a-z_]{1,32}$/),
      last4: z.string().regex(/^[0-9]{4}$/),
      exp_month: z.number().int().min(1).max(12),
      exp_year: z.number().int().min(1970).max(9999),
      // The same card number gives the same fingerprint within one processor account: a
      // self-referral signal (src/billing/referrals/self-referral.ts), never shown.
      fingerprint: z
        .string()
        .regex(/^[A-Za-z0-9_-]{1,64}$/)
        .nullish(),
    })
    .nullish(),
});
export type PaymentMethod = z.infer<typeof PaymentMethod>;

export const Customer = z.object({
  id: processorId("cus"),
  invoice_settings: z.object({ default_payment_method: ref("pm").nullish() }).nullish(),
});
export type Customer = z.infer<typeof Customer>;

/** `previous_attributes.customer` on payment_method.detached: the customer the card left. */
export const PreviousCustomer = z.object({ customer: ref("cus").nullish() });

export const CustomerId = processorId("cus");

export const CheckoutSession = z.object({
  id: z.string().regex(/^cs_[A-Za-z0-9_]{1,250}$/, "must be a cs_… id"),
  mode: z.string().max(32),
  payment_status: z.string().max(32),
  amount_total: minorAmount.nullish(),
  currency: currency.nullish(),
  payment_intent: ref("pi").nullish(),
});
export type CheckoutSession = z.infer<typeof CheckoutSession>;
