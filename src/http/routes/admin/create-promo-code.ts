import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { createPromoCode } from "../../../billing/promo-codes/create-promo-code.js";
import {
  PROMO_CODE_PATTERN,
  PROMO_MAX_AMOUNT,
  PROMO_MAX_GRANT_DAYS,
  PROMO_MAX_REDEMPTIONS,
} from "../../../billing/promo-codes/promo-code.js";
import { billingContext, type AppEnv } from "../../context.js";
import { errorResponses, jsonBody, jsonResponse, PositiveUsdString, Timestamp } from "../../schemas.js";
import { requiresKey } from "../access.js";
import { PromoCodeJson, promoCodeJson } from "./promo-code-schemas.js";

export const CreatePromoCodeRequest = z
  .object({
    code: z
      .string()
      .trim()
      .regex(PROMO_CODE_PATTERN, "must be 3 to 32 letters, digits, '-' or '_', starting with a letter or digit")
      .openapi({ example: "LAUNCH25", description: "Case-insensitive; stored upper case" }),
    amount: PositiveUsdString.refine((n) => n <= PROMO_MAX_AMOUNT, "must be at most 10000.00 USD").openapi({
      example: "25.00",
      description: "Credits each redemption grants, USD (at most 10000.00)",
    }),
    expires_at: Timestamp.nullable().optional().openapi({
      example: "2027-01-01T00:00:00Z",
      description: "When the code stops being redeemable; omit for never",
    }),
    grant_expires_in_days: z
      .number()
      .int()
      .min(1)
      .max(PROMO_MAX_GRANT_DAYS)
      .nullable()
      .optional()
      .openapi({ example: 90, description: "The grant expires this many days after its redemption; omit for never" }),
    max_redemptions: z.number().int().min(1).max(PROMO_MAX_REDEMPTIONS).openapi({ example: 500 }),
    first_top_up_only: z.boolean().default(false).openapi({
      description:
        "Only organizations that have never been credited a paid top-up (card or HUSD, even one refunded since) may redeem it",
    }),
  })
  .strict();

export const createPromoCodeRoute = createRoute({
  operationId: "createPromoCode",
  ...requiresKey({
    scope: "admin",
    area: "admin",
    description:
      "The code is the key: the same code with the same terms again answers the first (200); with other terms, 409 conflict.",
  }),
  method: "post",
  path: "/v1/admin/promo-codes",
  summary: "Create a promo code",
  request: { body: jsonBody(CreatePromoCodeRequest) },
  responses: {
    201: jsonResponse(PromoCodeJson, "The promo code"),
    200: jsonResponse(PromoCodeJson, "The same code with the same terms, made before"),
    ...errorResponses(400, 401, 403, 409),
  },
});

export function registerCreatePromoCode(app: OpenAPIHono<AppEnv>) {
  app.openapi(createPromoCodeRoute, async (c) => {
    const body = c.req.valid("json");
    const { promoCode, created } = await createPromoCode(billingContext(c.get("deps")), {
      code: body.code,
      amount: body.amount,
      expiresAt: body.expires_at ? new Date(body.expires_at) : null,
      grantExpiresInDays: body.grant_expires_in_days ?? null,
      maxRedemptions: body.max_redemptions,
      firstTopUpOnly: body.first_top_up_only,
    });
    return c.json(promoCodeJson(promoCode), created ? 201 : 200);
  });
}
