import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { PROMO_CODE_PATTERN } from "../../../billing/promo-codes/promo-code.js";
import { redeemPromoCode } from "../../../billing/promo-codes/redeem-promo-code.js";
import { billingContext, type AppEnv } from "../../context.js";
import { principalOrgId } from "../../middleware/auth.js";
import { usdFields } from "../../present.js";
import { errorResponses, IdempotencyKeyHeader, jsonBody, jsonResponse } from "../../schemas.js";
import { requiresKey } from "../access.js";

export const RedeemPromoCodeRequest = z
  .object({
    code: z
      .string()
      .trim()
      .regex(PROMO_CODE_PATTERN, "must be 3 to 32 letters, digits, '-' or '_', starting with a letter or digit")
      .openapi({ example: "launch25", description: "Case-insensitive" }),
  })
  .strict();

export const PromoRedemptionJson = z
  .object({
    id: z
      .string()
      .openapi({ example: "prr_4fJ2kQ9x0cT1mB7rW3yZ", description: "The redemption (the grant's source_id)" }),
    code: z.string(),
    amount: z.number(),
    amount_usd: z.string(),
    amount_nano_usd: z.string(),
    grant_id: z.string(),
    transaction_id: z.string().openapi({ description: "The grant's ledger transaction, kind promo_credit" }),
    grant_expires_at: z.string().nullable(),
    created_at: z.string(),
  })
  .openapi("PromoRedemption");

export const redeemPromoCodeRoute = createRoute({
  operationId: "redeemPromoCode",
  ...requiresKey({
    scope: "org",
    area: "billing",
    description:
      "Grants the code's credits (a grant of source promo, ledger kind promo_credit) once per organization per code. " +
      "Refusals: 422 unknown_promo_code, promo_code_inactive (deactivated), promo_code_expired, promo_code_exhausted " +
      "(max_redemptions reached), promo_code_first_top_up_only (the organization was already credited a paid top-up); " +
      "409 promo_code_already_redeemed. With an Idempotency-Key, a retry is answered with the redemption the key made " +
      "(200, Idempotent-Replayed: true), even after the code ran out or was deactivated; the same key with another code: 409 idempotency_key_reused.",
  }),
  method: "post",
  path: "/v1/billing/promo-codes/redeem",
  summary: "Redeem a promo code",
  request: {
    headers: z.object({ "idempotency-key": IdempotencyKeyHeader.optional() }),
    body: jsonBody(RedeemPromoCodeRequest),
  },
  responses: {
    201: jsonResponse(PromoRedemptionJson, "Redeemed: the credits are granted"),
    200: jsonResponse(PromoRedemptionJson, "The redemption an earlier request with the same key made"),
    ...errorResponses(400, 401, 403, 409, 422),
  },
});

export function registerRedeemPromoCode(app: OpenAPIHono<AppEnv>) {
  app.openapi(redeemPromoCodeRoute, async (c) => {
    const r = await redeemPromoCode(billingContext(c.get("deps")), {
      orgId: principalOrgId(c),
      code: c.req.valid("json").code,
      idempotencyKey: c.req.valid("header")["idempotency-key"],
    });
    if (!r.created) c.header("Idempotent-Replayed", "true");
    return c.json(
      {
        id: r.id,
        code: r.code,
        ...usdFields("amount", r.amount),
        grant_id: r.grant.id,
        transaction_id: r.grant.transactionId,
        grant_expires_at: r.grant.expiresAt?.toISOString() ?? null,
        created_at: r.createdAt.toISOString(),
      },
      r.created ? 201 : 200,
    );
  });
}
