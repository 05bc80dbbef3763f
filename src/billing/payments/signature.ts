import Stripe from "stripe";
import { BillingError } from "../../errors.js";
import { ProcessorEvent } from "./objects.js";

/**
 * How old a signed delivery may be. The processor signs each delivery attempt afresh, so only a
 * replayed (captured) request is ever older than this; 300 s is the SDK's own default.
 */
export const SIGNATURE_TOLERANCE_SECONDS = 300;

/**
 * The largest delivery read before its signature is checked. The processor's events carry one
 * object (a payment, charge, dispute, customer or payment method, with at most 50 metadata pairs
 * of 500 characters): tens of kilobytes at most. A larger body is refused (413) unread.
 */
export const PROCESSOR_EVENT_MAX_BYTES = 256 * 1024;

/**
 * What can be checked of a delivery before its body is read: it carries a signature, and there
 * is a secret to check it with.
 */
export function requireSignedDelivery(
  signatureHeader: string | undefined,
  secret: string | undefined,
): { header: string; secret: string } {
  // A delivery without a signature is refused before anything else: no genuine delivery lacks
  // one, whatever our configuration, and nothing about it deserves a retry.
  if (!signatureHeader) {
    throw new BillingError(
      "invalid_signature",
      "send the processor's Stripe-Signature header; unsigned deliveries are refused",
      {
        details: { param: "Stripe-Signature" },
      },
    );
  }
  if (!secret) {
    // 503, not 4xx: the processor keeps retrying, so nothing is lost while the secret is being set.
    throw new BillingError(
      "not_configured",
      "card payments are not configured on this deployment (STRIPE_WEBHOOK_SECRET is not set)",
    );
  }
  return { header: signatureHeader, secret };
}

/**
 * Verifies the delivery with the processor's own SDK (an HMAC over the exact bytes received; no
 * network call) and only then parses it. `rawBody` must be the body exactly as received: a
 * re-serialized JSON object never verifies. `now` is the injected clock, so the tolerance window
 * follows it in tests as it does in production.
 */
export async function verifyProcessorEvent(
  rawBody: string,
  signatureHeader: string | undefined,
  secret: string | undefined,
  now: Date,
): Promise<ProcessorEvent> {
  const signed = requireSignedDelivery(signatureHeader, secret);
  let parsed: unknown;
  try {
    parsed = await Stripe.webhooks.constructEventAsync(
      rawBody,
      signed.header,
      signed.secret,
      SIGNATURE_TOLERANCE_SECONDS,
      undefined,
      now.getTime(),
    );
  } catch (err) {
    if (err instanceof Stripe.errors.StripeSignatureVerificationError) {
      const stale = /tolerance/i.test(err.message);
      throw new BillingError(
        "invalid_signature",
        stale
          ? `the signature's timestamp is more than ${SIGNATURE_TOLERANCE_SECONDS} seconds old; replayed deliveries are refused`
          : "the Stripe-Signature header does not match this body and the configured webhook secret",
        { details: { param: "Stripe-Signature" } },
      );
    }
    // Correctly signed but not JSON: the SDK verifies first, then parses.
    if (err instanceof SyntaxError) throw new BillingError("invalid_json", "the signed body is not valid JSON");
    throw err;
  }
  const event = ProcessorEvent.safeParse(parsed);
  if (!event.success) {
    const fields = [...new Set(event.error.issues.map((i) => i.path.join(".") || "(body)"))].join(", ");
    throw new BillingError(
      "invalid_request",
      `the signed body is not a processor event (id, type, created, livemode, data.object): ${fields}`,
      { details: { param: fields } },
    );
  }
  return event.data;
}
