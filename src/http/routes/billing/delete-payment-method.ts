import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { removePaymentMethod } from "../../../billing/payments/manage-cards.js";
import { cardContext, type AppEnv } from "../../context.js";
import { principalOrgId } from "../../middleware/auth.js";
import { errorResponses, jsonResponse } from "../../schemas.js";
import { requiresKey } from "../access.js";
import { PaymentMethodIdParam } from "./schemas.js";
import { PaymentMethodJson, paymentMethodJson } from "./list-payment-methods.js";

export const deletePaymentMethodRoute = createRoute({
  operationId: "deletePaymentMethod",
  ...requiresKey({
    scope: "org",
    area: "billing",
    description: "Detaches the card at the processor; it leaves the list at once (the default flag goes with it).",
  }),
  method: "delete",
  path: "/v1/billing/payment-methods/{id}",
  summary: "Remove a saved card",
  request: { params: PaymentMethodIdParam },
  responses: {
    200: jsonResponse(PaymentMethodJson, "The removed card (masked)"),
    ...errorResponses(400, 401, 403, 404, 503),
  },
});

export function registerDeletePaymentMethod(app: OpenAPIHono<AppEnv>) {
  app.openapi(deletePaymentMethodRoute, async (c) => {
    const pm = await removePaymentMethod(cardContext(c.get("deps")), {
      orgId: principalOrgId(c),
      id: c.req.valid("param").id,
    });
    return c.json(paymentMethodJson(pm), 200);
  });
}
