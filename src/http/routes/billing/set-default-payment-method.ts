import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { makeDefaultPaymentMethod } from "../../../billing/payments/manage-cards.js";
import { cardContext, type AppEnv } from "../../context.js";
import { principalOrgId } from "../../middleware/auth.js";
import { errorResponses, jsonResponse } from "../../schemas.js";
import { requiresKey } from "../access.js";
import { PaymentMethodIdParam } from "./schemas.js";
import { PaymentMethodJson, paymentMethodJson } from "./list-payment-methods.js";

export const setDefaultPaymentMethodRoute = createRoute({
  operationId: "setDefaultPaymentMethod",
  ...requiresKey({
    scope: "org",
    area: "billing",
    description: "The card renewals and auto top-ups charge. Set at the processor, then shown here at once.",
  }),
  method: "post",
  path: "/v1/billing/payment-methods/{id}/default",
  summary: "Make a saved card the default",
  request: { params: PaymentMethodIdParam },
  responses: {
    200: jsonResponse(PaymentMethodJson, "The card, now the default (masked)"),
    ...errorResponses(400, 401, 403, 404, 503),
  },
});

export function registerSetDefaultPaymentMethod(app: OpenAPIHono<AppEnv>) {
  app.openapi(setDefaultPaymentMethodRoute, async (c) => {
    const pm = await makeDefaultPaymentMethod(cardContext(c.get("deps")), {
      orgId: principalOrgId(c),
      id: c.req.valid("param").id,
    });
    return c.json(paymentMethodJson(pm), 200);
  });
}
