import { z } from "@hono/zod-openapi";
import type { Balance } from "../../../billing/balance.js";
import { EventTypeNames } from "../../../billing/events/catalog.js";
import type { Invoice } from "../../../billing/invoices/invoice.js";
import type { AutoTopupSettings } from "../../../billing/auto-topup/settings.js";
import { BillingError } from "../../../errors.js";
import type { WebhookEndpoint } from "../../../billing/webhooks/endpoints.js";
import { usd, usdFields } from "../../present.js";

export const BalanceResponse = z
  .object({
    currency: z.literal("USD"),
    balance: z.number().openapi({ example: 142.87, description: "USD, for display. Exact value: balance_nano_usd." }),
    credits: z.number().openapi({ example: 142.87, description: "Spendable now: balance less live holds." }),
    low_balance_threshold: z.number().openapi({ example: 10 }),
    balance_nano_usd: z
      .string()
      .openapi({ example: "142870000000", description: "Exact, integer nano-USD (1e-9 USD)" }),
    credits_nano_usd: z.string(),
    held_nano_usd: z.string().openapi({ description: "Reserved by live authorizations" }),
    low_balance_threshold_nano_usd: z.string(),
  })
  .openapi("Balance");
export type BalanceResponse = z.infer<typeof BalanceResponse>;

export function balanceJson(b: Balance): BalanceResponse {
  const balance = usd(b.balance);
  const credits = usd(b.credits);
  const threshold = usd(b.lowBalanceThreshold);
  return {
    currency: "USD" as const,
    balance: balance.number,
    credits: credits.number,
    low_balance_threshold: threshold.number,
    balance_nano_usd: balance.nano,
    credits_nano_usd: credits.nano,
    held_nano_usd: b.held.toString(),
    low_balance_threshold_nano_usd: threshold.nano,
  };
}

export const InvoiceLineJson = z
  .object({
    kind: z.enum(["usage", "late_usage", "subscription", "adjustment"]),
    product: z.string().nullable(),
    model: z.string().nullable(),
    description: z.string(),
    quantities: z.record(z.string(), z.string()),
    amount: z.number(),
    amount_nano_usd: z.string(),
    period: z.object({ start: z.string().nullable(), end: z.string().nullable() }),
  })
  .openapi("InvoiceLine");

/** Billing details as documents print them: the snapshot an invoice or credit note took at issue. */
export const BillingDetailsJson = z
  .object({
    legal_name: z.string(),
    address_lines: z.array(z.string()),
    city: z.string(),
    postal_code: z.string().nullable(),
    country: z.string().openapi({ example: "DE", description: "ISO 3166-1 alpha-2" }),
    tax_id: z.string().nullable().openapi({ description: "As the customer gave it" }),
    invoice_email: z.string().nullable(),
  })
  .openapi("BillingDetailsSnapshot");

export const InvoiceJson = z
  .object({
    id: z.string(),
    number: z.string().openapi({ example: "INV-000123" }),
    status: z.enum(["draft", "open", "paid", "void"]),
    currency: z.literal("USD"),
    period: z.object({ start: z.string(), end: z.string() }),
    subtotal: z.number(),
    subtotal_nano_usd: z.string(),
    credits_applied: z.number(),
    credits_applied_nano_usd: z.string(),
    amount_due: z.number(),
    amount_due_nano_usd: z.string(),
    issued_at: z.string().nullable(),
    paid_at: z.string().nullable(),
    voided_at: z.string().nullable(),
    billing_details: BillingDetailsJson.nullable().openapi({
      description:
        "The organization's billing details when the invoice was issued (null: none were set then); later changes never alter it",
    }),
    lines: z.array(InvoiceLineJson).optional(),
  })
  .openapi("Invoice");
export type InvoiceJson = z.infer<typeof InvoiceJson>;

export function invoiceJson(i: Invoice): InvoiceJson {
  const subtotal = usd(i.subtotal);
  const applied = usd(i.creditsApplied);
  const due = usd(i.amountDue);
  return {
    id: i.id,
    number: i.number,
    status: i.status,
    currency: "USD" as const,
    period: { start: i.periodStart.toISOString(), end: i.periodEnd.toISOString() },
    subtotal: subtotal.number,
    subtotal_nano_usd: subtotal.nano,
    credits_applied: applied.number,
    credits_applied_nano_usd: applied.nano,
    amount_due: due.number,
    amount_due_nano_usd: due.nano,
    issued_at: i.issuedAt?.toISOString() ?? null,
    paid_at: i.paidAt?.toISOString() ?? null,
    voided_at: i.voidedAt?.toISOString() ?? null,
    billing_details: i.billingDetails,
    ...(i.lines
      ? {
          lines: i.lines.map((l) => {
            const amount = usd(l.amount);
            return {
              kind: l.kind,
              product: l.product,
              model: l.model,
              description: l.description,
              quantities: l.quantities,
              amount: amount.number,
              amount_nano_usd: amount.nano,
              period: { start: l.periodStart?.toISOString() ?? null, end: l.periodEnd?.toISOString() ?? null },
            };
          }),
        }
      : {}),
  };
}

/**
 * Where the processor's page sends the customer back: https, or http on this machine
 * (localhost, 127.0.0.1, [::1]) outside production, for development.
 */
export const RedirectUrl = z
  .string()
  .max(2048)
  .openapi({ example: "https://console.hanzo.ai/billing?topup=done", format: "uri" });

export function checkRedirectUrl(text: string, param: string, nodeEnv: string): string {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw new BillingError("invalid_request", `${param} must be an absolute URL`, { details: { param } });
  }
  const local = ["localhost", "127.0.0.1", "[::1]"].includes(url.hostname);
  if (url.protocol === "https:") return text;
  if (url.protocol === "http:" && local && nodeEnv !== "production") return text;
  throw new BillingError(
    "invalid_request",
    `${param} must be an https URL${nodeEnv !== "production" ? " (http only on localhost, outside production)" : ""}`,
    { details: { param } },
  );
}

export const PaymentMethodIdParam = z.object({
  id: z
    .string()
    .regex(/^pm_[A-Za-z0-9]{1,64}$/, "must be a payment method id from GET /v1/billing/payment-methods")
    .openapi({ param: { name: "id", in: "path" }, example: "pm_4fJ2kQ9x0cT1mB7rW3yZ" }),
});

const usdTriple = (name: string, description: string) => ({
  [name]: z.number().openapi({ description: `${description} USD, for display; exact: ${name}_usd.` }),
  [`${name}_usd`]: z.string().openapi({ description: "Exact decimal USD" }),
  [`${name}_nano_usd`]: z.string().openapi({ description: "Exact, integer nano-USD" }),
});

export const AutoTopupResponse = z
  .object({
    enabled: z.boolean(),
    ...usdTriple("threshold", "A debit that takes the balance below this starts a charge."),
    ...usdTriple("amount", "Charged to the default card per crossing."),
    ...usdTriple("monthly_limit", "At most this much is charged per calendar month (UTC)."),
    ...usdTriple("charged_this_month", "Charged this calendar month, charges in flight included."),
    disabled_reason: z.enum(["requires_action", "declined"]).nullable().openapi({
      description:
        "Set when billing turned auto top-up off: the card needs the customer (requires_action) or was declined three times in a row. PUT with enabled: true turns it on again.",
    }),
    disabled_at: z.string().nullable(),
  })
  .openapi("AutoTopup");
export type AutoTopupResponse = z.infer<typeof AutoTopupResponse>;

export function autoTopupJson(s: AutoTopupSettings | null): AutoTopupResponse {
  return {
    enabled: s?.enabled ?? false,
    ...usdFields("threshold", s?.threshold ?? 0n),
    ...usdFields("amount", s?.amount ?? 0n),
    ...usdFields("monthly_limit", s?.monthlyLimit ?? 0n),
    ...usdFields("charged_this_month", s?.chargedThisMonth ?? 0n),
    disabled_reason: s?.disabledReason ?? null,
    disabled_at: s?.disabledAt?.toISOString() ?? null,
  } as AutoTopupResponse;
}

/** A webhook endpoint as the API shows it; its secret only in the answers that make one (create, rotate). */
export const WebhookEndpointJson = z
  .object({
    id: z.string().openapi({ example: "wh_7fK2pQ9xYb3LmN0aRtVw" }),
    url: z.string().openapi({ example: "https://example.com/hooks/hanzo" }),
    events: z
      .array(z.enum(EventTypeNames))
      .openapi({ description: "The event types it receives; empty: every type (test.ping only on request)" }),
    enabled: z.boolean(),
    disabled_reason: z
      .string()
      .nullable()
      .openapi({ description: "Why delivery stopped, when it was Hanzo that disabled the endpoint" }),
    failing_since: z.string().nullable().openapi({ description: "First failure of the current run of failures" }),
    previous_secret_expires_at: z
      .string()
      .nullable()
      .openapi({ description: "Until then the secret before the last rotation signs too" }),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi("WebhookEndpoint");
export type WebhookEndpointJson = z.infer<typeof WebhookEndpointJson>;

export const WebhookEndpointWithSecret = WebhookEndpointJson.extend({
  secret: z.string().openapi({
    example: "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw",
    description: "Signs every delivery (Standard Webhooks). Shown only now: keep it.",
  }),
}).openapi("WebhookEndpointWithSecret");
export type WebhookEndpointWithSecret = z.infer<typeof WebhookEndpointWithSecret>;

export function webhookEndpointJson(e: WebhookEndpoint): WebhookEndpointJson {
  return {
    id: e.id,
    url: e.url,
    events: e.events,
    enabled: e.enabled,
    disabled_reason: e.disabledReason,
    failing_since: e.failingSince?.toISOString() ?? null,
    previous_secret_expires_at: e.previousSecretExpiresAt?.toISOString() ?? null,
    created_at: e.createdAt.toISOString(),
    updated_at: e.updatedAt.toISOString(),
  };
}

export const WebhookUrl = z.string().max(2048).openapi({
  example: "https://example.com/hooks/hanzo",
  description: "https only; must resolve to a public address (no private, loopback, link-local or metadata targets)",
});
export const WebhookEventTypes = z.array(z.enum(EventTypeNames)).max(50);
export const WebhookId = z.object({ id: z.string().max(64) });
