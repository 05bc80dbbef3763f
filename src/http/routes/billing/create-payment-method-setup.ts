import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { startCardSetup } from "../../../billing/payments/manage-cards.js";
import { cardContext, type AppEnv } from "../../context.js";
import { principalOrgId } from "../../middleware/auth.js";
import { errorResponses, jsonBody, jsonResponse } from "../../schemas.js";
import { requiresKey } from "../access.js";
import { checkRedirectUrl, RedirectUrl } from "./schemas.js";

export const PaymentMethodSetupRequest = z
  .object({ success_url: RedirectUrl, cancel_url: RedirectUrl })
  .strict()
  .openapi("PaymentMethodSetupRequest", {
    example: { success_url: "https://console.hanzo.ai/billing/cards", cancel_url: "https://console.hanzo.ai/billing" },
  });
export type PaymentMethodSetupRequest = z.input<typeof PaymentMethodSetupRequest>;

export const PaymentMethodSetup = z
  .object({
    url: z.string().openapi({ description: "The processor's page where the customer adds the card" }),
    expires_at: z.string(),
  })
  .openapi("PaymentMethodSetup");

export const createPaymentMethodSetupRoute = createRoute({
  operationId: "createPaymentMethodSetup",
  ...requiresKey({
    scope: "org",
    area: "billing",
    description:
      "A setup-mode Checkout Session at the card processor: the card is typed on the processor's page, never ours, " +
      "and appears in GET /v1/billing/payment-methods once the processor's webhook says it was attached.",
  }),
  method: "post",
  path: "/v1/billing/payment-methods/setup",
  summary: "Add a card (processor-hosted page)",
  request: { body: jsonBody(PaymentMethodSetupRequest) },
  responses: {
    201: jsonResponse(PaymentMethodSetup, "Setup session created"),
    ...errorResponses(400, 401, 403, 503),
  },
});

export function registerCreatePaymentMethodSetup(app: OpenAPIHono<AppEnv>) {
  app.openapi(createPaymentMethodSetupRoute, async (c) => {
    const deps = c.get("deps");
    const body = c.req.valid("json");
    const setup = await startCardSetup(cardContext(deps), {
      orgId: principalOrgId(c),
      successUrl: checkRedirectUrl(body.success_url, "success_url", deps.config.NODE_ENV),
      cancelUrl: checkRedirectUrl(body.cancel_url, "cancel_url", deps.config.NODE_ENV),
    });
    return c.json({ url: setup.url, expires_at: setup.expiresAt.toISOString() }, 201);
  });
}
