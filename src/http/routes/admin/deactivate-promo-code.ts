import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { deactivatePromoCode } from "../../../billing/promo-codes/list-promo-codes.js";
import { billingContext, type AppEnv } from "../../context.js";
import { errorResponses, jsonResponse } from "../../schemas.js";
import { requiresKey } from "../access.js";
import { PromoCodeJson, promoCodeJson } from "./promo-code-schemas.js";

export const deactivatePromoCodeRoute = createRoute({
  operationId: "deactivatePromoCode",
  ...requiresKey({
    scope: "admin",
    area: "admin",
    description:
      "No redemption after this (422 promo_code_inactive); redemptions made keep their grants. Deactivating again changes nothing.",
  }),
  method: "post",
  path: "/v1/admin/promo-codes/{id}/deactivate",
  summary: "Deactivate a promo code",
  request: { params: z.object({ id: z.string().max(64) }) },
  responses: { 200: jsonResponse(PromoCodeJson, "The promo code, deactivated"), ...errorResponses(400, 401, 403, 404) },
});

export function registerDeactivatePromoCode(app: OpenAPIHono<AppEnv>) {
  app.openapi(deactivatePromoCodeRoute, async (c) => {
    const { id } = c.req.valid("param");
    return c.json(promoCodeJson(await deactivatePromoCode(billingContext(c.get("deps")), { id })), 200);
  });
}
