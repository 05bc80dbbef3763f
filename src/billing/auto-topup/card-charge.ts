import Stripe from "stripe";
import type { TransactionSql } from "../../db/client.js";
import { NANO_USD_PER_CENT } from "../payments/card-payment.js";
import type { ProcessorClient } from "../payments/processor-client.js";

/** The card processor's client: the official SDK, as processorClient() makes it. */
export type Processor = ProcessorClient;

/** The org's default card and its processor customer, if it has both. */
export async function defaultCard(
  sql: TransactionSql,
  orgId: string,
): Promise<{ customerId: string; paymentMethodId: string } | null> {
  const [row] = await sql<{ customer_id: string; processor_id: string }[]>`
    select c.customer_id, pm.processor_id from payment_methods pm join processor_customers c on c.org_id = pm.org_id
    where pm.org_id = ${orgId} and pm.is_default and pm.detached_at is null`;
  return row ? { customerId: row.customer_id, paymentMethodId: row.processor_id } : null;
}

export type ChargeOutcome =
  | { kind: "succeeded"; paymentId: string }
  | { kind: "requires_action"; paymentId: string | null; code: string }
  | { kind: "declined"; paymentId: string | null; code: string };

/** Why the card refused a charge we started. */
export type RefusalKind = "requires_action" | "declined";

/**
 * A signed payment_intent.payment_failed for a charge we started (auto top-up or renewal): the
 * org the payment's customer is linked to, the payment, and our charge id from its metadata.
 */
export type PaymentRefusal = {
  orgId: string;
  paymentId: string;
  chargeRef: string | null;
  kind: RefusalKind;
  code: string;
  now: Date;
};

/**
 * Charges a saved card off-session: a PaymentIntent confirmed at once, with `idempotencyKey`, so a
 * retry after a lost answer is the same payment, never a second one. What the customer must do
 * (authentication) and what the card refused are outcomes; anything else (the processor
 * unreachable, 5xx, rate limited: isProcessorUnavailable) is thrown, and the caller retries with
 * the same key.
 */
export async function chargeCardOffSession(
  processor: Processor,
  input: {
    customerId: string;
    paymentMethodId: string;
    amount: bigint;
    idempotencyKey: string;
    description: string;
    metadata: Record<string, string>;
  },
): Promise<ChargeOutcome> {
  if (input.amount % NANO_USD_PER_CENT !== 0n) throw new Error(`a card charge must be whole cents: ${input.amount}`);
  try {
    const pi = await processor.paymentIntents.create(
      {
        amount: Number(input.amount / NANO_USD_PER_CENT),
        currency: "usd",
        customer: input.customerId,
        payment_method: input.paymentMethodId,
        off_session: true,
        confirm: true,
        description: input.description,
        metadata: input.metadata,
      },
      { idempotencyKey: input.idempotencyKey },
    );
    if (pi.status === "succeeded" || pi.status === "processing") return { kind: "succeeded", paymentId: pi.id };
    if (pi.status === "requires_action" || pi.status === "requires_confirmation")
      return { kind: "requires_action", paymentId: pi.id, code: pi.status };
    return { kind: "declined", paymentId: pi.id, code: pi.last_payment_error?.code ?? pi.status };
  } catch (err) {
    if (err instanceof Stripe.errors.StripeCardError) {
      const paymentId = err.payment_intent?.id ?? null;
      if (err.code === "authentication_required" || err.payment_intent?.status === "requires_action")
        return { kind: "requires_action", paymentId, code: err.code ?? "authentication_required" };
      return { kind: "declined", paymentId, code: err.decline_code ?? err.code ?? "card_declined" };
    }
    // The processor refused the request itself (a customer or card that no longer exists there):
    // retrying cannot help, so it counts as a decline.
    if (err instanceof Stripe.errors.StripeInvalidRequestError && (err.statusCode ?? 0) < 500)
      return { kind: "declined", paymentId: null, code: err.code ?? "invalid_request" };
    throw err;
  }
}
