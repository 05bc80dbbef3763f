import Stripe from "stripe";
import type { Config } from "../../config.js";
import { BillingError } from "../../errors.js";

export type ProcessorClient = Stripe;
export type ProcessorConfig = Pick<
  Config,
  "STRIPE_SECRET_KEY" | "STRIPE_API_URL" | "STRIPE_MAX_NETWORK_RETRIES" | "STRIPE_TIMEOUT_MS"
>;

const clients = new WeakMap<ProcessorConfig, Stripe>();

/**
 * The one way to reach the card processor: the official `stripe` SDK, with the deployment's key,
 * and its API base when STRIPE_API_URL points elsewhere (the development fake in dev/processor,
 * which tests and `npm run dev` use). One client per configuration object. Without a key nothing
 * can start a payment: 503 not_configured, which callers surface as is.
 */
export function processorClient(config: ProcessorConfig): ProcessorClient {
  const existing = clients.get(config);
  if (existing) return existing;
  if (!config.STRIPE_SECRET_KEY) {
    throw new BillingError(
      "not_configured",
      "card payments are not configured on this deployment (STRIPE_SECRET_KEY is not set)",
    );
  }
  const base = config.STRIPE_API_URL ? new URL(config.STRIPE_API_URL) : null;
  const protocol = base?.protocol === "http:" ? "http" : "https";
  const client = new Stripe(config.STRIPE_SECRET_KEY, {
    maxNetworkRetries: config.STRIPE_MAX_NETWORK_RETRIES,
    timeout: config.STRIPE_TIMEOUT_MS,
    telemetry: false,
    appInfo: { name: "hanzo-billing" },
    ...(base ? { host: base.hostname, port: Number(base.port || (protocol === "http" ? 80 : 443)), protocol } : {}),
  });
  clients.set(config, client);
  return client;
}

/**
 * True when a processor call failed without an answer we can act on: unreachable, timed out,
 * 5xx, rate limited, or another request with the same idempotency key still running. Such a
 * call may or may not have taken effect; it is safe to retry with the same idempotency key.
 */
export function isProcessorUnavailable(err: unknown): boolean {
  if (!(err instanceof Stripe.errors.StripeError)) return false;
  if (err instanceof Stripe.errors.StripeConnectionError) return true;
  if (err instanceof Stripe.errors.StripeAPIError) return true;
  if (err instanceof Stripe.errors.StripeRateLimitError) return true;
  if (err instanceof Stripe.errors.StripeIdempotencyError && err.statusCode === 409) return true;
  return typeof err.statusCode === "number" && err.statusCode >= 500;
}

/** Runs a processor call, turning "no usable answer" (see isProcessorUnavailable) into 503 processor_unavailable. */
export async function callProcessor<T>(what: string, fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (err) {
    if (isProcessorUnavailable(err)) {
      throw new BillingError(
        "processor_unavailable",
        `the card processor did not answer (${what}): it may or may not be done there; retry with the same Idempotency-Key, which does it at most once`,
        { cause: err },
      );
    }
    throw err;
  }
}
