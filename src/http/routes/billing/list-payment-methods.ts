import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { formatExpiry, listPaymentMethods, type PaymentMethodView } from "../../../billing/payments/payment-methods.js";
import { billingContext, type AppEnv } from "../../context.js";
import { requiresKey } from "../access.js";
import { principalOrgId } from "../../middleware/auth.js";
import { errorResponses, jsonResponse } from "../../schemas.js";

export const PaymentMethodJson = z
  .object({
    id: z
      .string()
      .openapi({ example: "pm_4fJ2kQ9x0cT1mB7rW3yZ", description: "Ours; the processor's id is never exposed" }),
    brand: z.string().openapi({ example: "visa" }),
    last4: z.string().openapi({ example: "4242" }),
    exp: z.string().openapi({ example: "12/28", description: "MM/YY" }),
    default: z.boolean(),
  })
  .openapi("PaymentMethod");

export const PaymentMethodsResponse = z
  .object({ payment_methods: z.array(PaymentMethodJson) })
  .openapi("PaymentMethods");
export type PaymentMethodsResponse = z.infer<typeof PaymentMethodsResponse>;

export function paymentMethodJson(pm: PaymentMethodView) {
  return {
    id: pm.id,
    brand: pm.brand,
    last4: pm.last4,
    exp: formatExpiry(pm.expMonth, pm.expYear),
    default: pm.isDefault,
  };
}

export const listPaymentMethodsRoute = createRoute({
  operationId: "listPaymentMethods",
  ...requiresKey({
    scope: "org",
    area: "billing",
    description:
      "Cards are captured by the processor in the billing portal and reach us as processor events; only brand, last four digits, " +
      "expiry and the default flag are kept. Default first, then oldest first.",
  }),
  method: "get",
  path: "/v1/billing/payment-methods",
  summary: "Saved payment methods (masked)",
  responses: { 200: jsonResponse(PaymentMethodsResponse, "Payment methods"), ...errorResponses(401, 403) },
});

export function registerListPaymentMethods(app: OpenAPIHono<AppEnv>) {
  app.openapi(listPaymentMethodsRoute, async (c) => {
    const methods = await listPaymentMethods(billingContext(c.get("deps")), { orgId: principalOrgId(c) });
    return c.json({ payment_methods: methods.map(paymentMethodJson) }, 200);
  });
}
