import { z } from "@hono/zod-openapi";
import { GRANT_SOURCES } from "../../../billing/grants.js";
import type { GrantView } from "../../../billing/list-grants.js";
import { usd, usdFields } from "../../present.js";

export const GrantJson = z
  .object({
    id: z.string().openapi({ example: "grant_4fJ2kQ9x0cT1mB7rW3yZ" }),
    transaction_id: z
      .string()
      .openapi({ description: "The grant's ledger transaction (GET /v1/billing/transactions)" }),
    source: z.enum(GRANT_SOURCES),
    source_id: z.string().nullable().openapi({
      description:
        "The row the grant came from (promo redemption `prr_…`, referral, credit note); null for operator and plan grants",
    }),
    reason: z.string(),
    amount: z.number().openapi({ description: "What was granted, USD" }),
    amount_usd: z.string(),
    amount_nano_usd: z.string(),
    remaining: z.number().openapi({
      description:
        "What of it is still in the balance. Tracked for a grant that expires (0 once expired); for a grant without " +
        "expiry, an attribution: the part of the balance expiring grants do not hold, given to grants without expiry " +
        "newest first. All grants' remaining together never exceed the balance.",
    }),
    remaining_usd: z.string(),
    remaining_nano_usd: z.string(),
    consumed: z.number().openapi({
      description: "amount − remaining; for an expired grant, what was spent from it before it expired",
    }),
    consumed_usd: z.string(),
    consumed_nano_usd: z.string(),
    expires_at: z.string().nullable(),
    expired: z.boolean(),
    expired_amount: z.number().nullable().openapi({
      description: "What the expiry took back once it is posted (within seconds of expires_at); null before",
    }),
    expired_amount_usd: z.string().nullable(),
    expired_amount_nano_usd: z.string().nullable(),
    spend_order: z
      .number()
      .int()
      .nullable()
      .openapi({
        description:
          "Which is drawn first: 1, 2, … for expiring grants (soonest expiry first), then one shared position for all " +
          "grants without expiry (they are part of the balance); null when nothing remains",
      }),
    created_at: z.string(),
  })
  .openapi("CreditGrantView");
export type GrantJson = z.infer<typeof GrantJson>;

export function grantViewJson(g: GrantView): GrantJson {
  const expired = g.expiredAmount === null ? null : usd(g.expiredAmount);
  return {
    id: g.id,
    transaction_id: g.transactionId,
    source: g.source,
    source_id: g.sourceId,
    reason: g.reason,
    ...usdFields("amount", g.amount),
    ...usdFields("remaining", g.remaining),
    ...usdFields("consumed", g.consumed),
    expires_at: g.expiresAt?.toISOString() ?? null,
    expired: g.expired,
    expired_amount: expired?.number ?? null,
    expired_amount_usd: expired?.exact ?? null,
    expired_amount_nano_usd: expired?.nano ?? null,
    spend_order: g.spendOrder,
    created_at: g.createdAt.toISOString(),
  };
}
