import { z, type OpenAPIHono } from "@hono/zod-openapi";
import { EVENT_TYPES, type EventType } from "../../../billing/events/catalog.js";
import { GRANT_SOURCES } from "../../../billing/grants.js";

/**
 * The payload of each event type: what `data` holds in a webhook's body and in the event log. The
 * OpenAPI document publishes them under `webhooks` (registerEventWebhooks). USD appears as in the
 * rest of the API: a number for display, the exact decimal (`*_usd`) and nano-USD (`*_nano_usd`).
 */
const usd = (name: string, nullable = false) => {
  const n = nullable ? z.number().nullable() : z.number();
  const s = nullable ? z.string().nullable() : z.string();
  return { [name]: n, [`${name}_usd`]: s, [`${name}_nano_usd`]: s } as Record<string, z.ZodType>;
};

const BalanceLow = z
  .object({ ...usd("balance"), ...usd("threshold"), transaction_id: z.string() })
  .openapi("BalanceLowEvent", { description: EVENT_TYPES["balance.low"] });
const BalanceDepleted = z
  .object({ ...usd("balance"), transaction_id: z.string() })
  .openapi("BalanceDepletedEvent", { description: EVENT_TYPES["balance.depleted"] });
const Deposit = z
  .object({
    deposit_id: z.string(),
    state: z.enum(["seen", "confirming", "credited", "orphaned", "rejected", "reversed"]),
    reason: z.string().nullable(),
    chain_id: z.number(),
    tx_hash: z.string(),
    block_number: z.string().nullable(),
    token_address: z.string(),
    from: z.string().nullable(),
    amount_base_units: z.string(),
    ...usd("amount", true),
  })
  .openapi("DepositEvent", { description: "An HUSD deposit as it stands after the change the event tells." });
const Topup = z
  .object({
    topup_id: z.string().openapi({ description: "As GET /v1/billing/topups shows it" }),
    ...usd("amount", true),
    failure_message: z.string().nullable().optional().openapi({ description: "topup.failed: why" }),
  })
  .openapi("TopupEvent", {
    description:
      "A card top-up (no card or processor details); amount is what was asked or credited (null when refused).",
  });
const CreditGranted = z
  .object({
    grant_id: z.string().openapi({ description: "As GET /v1/billing/grants shows it" }),
    source: z.enum(GRANT_SOURCES),
    source_id: z.string().nullable().openapi({
      description:
        "The row the grant came from (promo redemption, referral, credit note); null for operator and plan grants",
    }),
    reason: z.string(),
    ...usd("amount"),
    expires_at: z.string().nullable().openapi({ description: "When the grant's unused part expires; null: never" }),
    transaction_id: z
      .string()
      .openapi({ description: "The grant's ledger transaction (GET /v1/billing/transactions)" }),
  })
  .openapi("CreditGrantedEvent", { description: EVENT_TYPES["credit.granted"] });
const AutoTopupDisabled = z
  .object({ reason: z.enum(["requires_action", "declined"]), message: z.string() })
  .openapi("AutoTopupDisabledEvent", { description: EVENT_TYPES["auto_topup.disabled"] });
const Invoice = z
  .object({
    invoice_id: z.string(),
    number: z.string().nullable(),
    status: z.enum(["draft", "open", "paid", "void"]),
    period_start: z.string(),
    period_end: z.string(),
    currency: z.string(),
    ...usd("subtotal"),
    ...usd("credits_applied"),
    ...usd("amount_due"),
  })
  .openapi("InvoiceEvent", { description: "An invoice as it stands after the change the event tells." });
const InvoicePaymentFailed = z
  .object({
    invoice_id: z.string(),
    number: z.string(),
    attempt: z.number().openapi({ description: "Which charge of the invoice failed (1 at issue, then retries)" }),
    ...usd("amount"),
    failure_code: z.string(),
  })
  .openapi("InvoicePaymentFailedEvent", { description: EVENT_TYPES["invoice.payment_failed"] });
const BudgetThreshold = z
  .object({
    budget_id: z.string(),
    scope: z.enum(["org", "project", "key"]),
    target: z.string().openapi({ description: "The organization id, the project, or the API key id" }),
    enforcement: z.enum(["hard", "soft"]),
    threshold: z.union([z.literal(80), z.literal(100)]).openapi({ description: "Percent of the limit reached" }),
    period: z.string().openapi({ description: "The budget period, YYYY-MM (calendar month, UTC)", example: "2026-12" }),
    period_start: z.string(),
    period_end: z.string(),
    ...usd("limit"),
    ...usd("spent"),
  })
  .openapi("BudgetThresholdEvent", { description: EVENT_TYPES["budget.threshold_reached"] });
const CreditNoteIssued = z
  .object({
    credit_note_id: z.string(),
    number: z.string().openapi({ example: "CN-000001" }),
    invoice_id: z.string(),
    invoice_number: z.string(),
    reason: z.string(),
    refund: z.enum(["credits", "card"]),
    ...usd("total"),
  })
  .openapi("CreditNoteIssuedEvent", { description: EVENT_TYPES["credit_note.issued"] });
const Referral = z
  .object({
    referral_id: z.string().openapi({ description: "As GET /v1/billing/referrals shows it (to the referrer)" }),
    role: z.enum(["referrer", "referred"]).openapi({ description: "The receiving org's side of the referral" }),
    state: z.enum(["linked", "qualified", "paid", "capped", "canceled", "rejected", "clawed_back"]),
    reason: z
      .enum(["shared_processor_customer", "shared_card", "shared_wallet", "qualifying_topup_reversed"])
      .nullable(),
    qualifying_kind: z.enum(["card", "husd"]).nullable(),
    ...usd("credit", true),
    clawed_back: z.number().nullable().optional(),
    clawed_back_usd: z.string().nullable().optional(),
    clawed_back_nano_usd: z.string().nullable().optional().openapi({
      description:
        "referral.clawed_back: what was taken back now (null: waiting for live holds funded by the grant; posted by the expiry job)",
    }),
  })
  .openapi("ReferralEvent", {
    description:
      "A referral after the change the event tells; credit is the receiving org's grant (null: none, or capped).",
  });
const EndpointDisabled = z
  .object({ webhook_id: z.string(), url: z.string(), failing_since: z.string() })
  .openapi("WebhookEndpointDisabledEvent", { description: EVENT_TYPES["webhook_endpoint.disabled"] });
const TestPing = z
  .object({ webhook_id: z.string() })
  .openapi("TestPingEvent", { description: EVENT_TYPES["test.ping"] });

export const EVENT_DATA_SCHEMAS: Record<EventType, z.ZodType> = {
  "balance.low": BalanceLow,
  "balance.depleted": BalanceDepleted,
  "deposit.seen": Deposit,
  "deposit.credited": Deposit,
  "deposit.orphaned": Deposit,
  "deposit.reversed": Deposit,
  "topup.succeeded": Topup,
  "topup.failed": Topup,
  "credit.granted": CreditGranted,
  "auto_topup.disabled": AutoTopupDisabled,
  "invoice.issued": Invoice,
  "invoice.paid": Invoice,
  "invoice.payment_failed": InvoicePaymentFailed,
  "budget.threshold_reached": BudgetThreshold,
  "credit_note.issued": CreditNoteIssued,
  "referral.qualified": Referral,
  "referral.paid": Referral,
  "referral.rejected": Referral,
  "referral.canceled": Referral,
  "referral.clawed_back": Referral,
  "webhook_endpoint.disabled": EndpointDisabled,
  "test.ping": TestPing,
};

/** The body of a webhook of `type` (and an entry of the event log). */
export function eventEnvelopeSchema(type: EventType) {
  return z.object({
    id: z.string().openapi({ description: "The event's id (`evt_…`), also the `webhook-id` header: dedupe on it" }),
    type: z.literal(type),
    timestamp: z.string().openapi({ description: "When the fact happened (RFC 3339, UTC)" }),
    data: EVENT_DATA_SCHEMAS[type],
  });
}

const SIGNING =
  "Signed per the Standard Webhooks specification: verify `webhook-signature` over " +
  "`{webhook-id}.{webhook-timestamp}.{body}` with the endpoint's secret (e.g. the `standardwebhooks` package). " +
  "Delivered at least once: the same event may arrive again with the same `webhook-id`. Answer 2xx within 10 s.";

/** Every event type as an OpenAPI 3.1 webhook: the request Hanzo sends to a customer's endpoint. */
export function registerEventWebhooks(registry: OpenAPIHono["openAPIRegistry"]) {
  for (const type of Object.keys(EVENT_TYPES) as EventType[]) {
    registry.registerWebhook({
      method: "post",
      path: type,
      operationId: `event_${type.replace(".", "_")}`,
      summary: type,
      description: `${EVENT_TYPES[type]}\n\n${SIGNING}`,
      tags: ["events"],
      security: [],
      request: {
        headers: z.object({
          "webhook-id": z.string().openapi({ description: "The event id (`evt_…`)" }),
          "webhook-timestamp": z.string().openapi({ description: "Unix seconds when this attempt was signed" }),
          "webhook-signature": z
            .string()
            .openapi({ description: "Space-separated `v1,<base64>` signatures (two during a secret rotation)" }),
        }),
        body: { required: true, content: { "application/json": { schema: eventEnvelopeSchema(type) } } },
      },
      responses: {
        200: { description: "Any 2xx: received. Anything else, a timeout or a redirect is retried." },
      },
    });
  }
}
