import { z } from "@hono/zod-openapi";
import type { PromoCode } from "../../../billing/promo-codes/promo-code.js";
import { usdFields } from "../../present.js";

export const PromoCodeJson = z
  .object({
    id: z.string().openapi({ example: "promo_4fJ2kQ9x0cT1mB7rW3yZ" }),
    code: z
      .string()
      .openapi({ example: "LAUNCH25", description: "As stored: upper case (codes are case-insensitive)" }),
    amount: z.number(),
    amount_usd: z.string(),
    amount_nano_usd: z.string(),
    expires_at: z.string().nullable().openapi({ description: "The code cannot be redeemed from then; null: never" }),
    grant_expires_in_days: z
      .number()
      .int()
      .nullable()
      .openapi({ description: "Each redemption's grant expires this many days after it; null: never" }),
    max_redemptions: z.number().int(),
    redemption_count: z.number().int(),
    first_top_up_only: z.boolean(),
    active: z.boolean().openapi({ description: "False once deactivated (expiry and exhaustion do not change it)" }),
    deactivated_at: z.string().nullable(),
    created_at: z.string(),
  })
  .openapi("PromoCode");
export type PromoCodeJson = z.infer<typeof PromoCodeJson>;

export function promoCodeJson(p: PromoCode): PromoCodeJson {
  return {
    id: p.id,
    code: p.code,
    ...usdFields("amount", p.amount),
    expires_at: p.expiresAt?.toISOString() ?? null,
    grant_expires_in_days: p.grantExpiresInDays,
    max_redemptions: p.maxRedemptions,
    redemption_count: p.redemptionCount,
    first_top_up_only: p.firstTopUpOnly,
    active: p.deactivatedAt === null,
    deactivated_at: p.deactivatedAt?.toISOString() ?? null,
    created_at: p.createdAt.toISOString(),
  };
}
