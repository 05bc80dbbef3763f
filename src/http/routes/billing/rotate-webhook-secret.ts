import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { rotateWebhookSecret } from "../../../billing/webhooks/endpoints.js";
import { billingContext, type AppEnv } from "../../context.js";
import { principalOrgId } from "../../middleware/auth.js";
import { requiresKey } from "../access.js";
import { errorResponses, jsonResponse } from "../../schemas.js";
import { WebhookEndpointWithSecret, webhookEndpointJson, WebhookId } from "./schemas.js";

export const rotateWebhookSecretRoute = createRoute({
  operationId: "rotateWebhookSecret",
  ...requiresKey({
    scope: "org",
    area: "billing",
    description:
      "A new signing secret, shown this once. For 24 hours deliveries carry two signatures, one with each " +
      "secret, so a receiver can switch to the new one without missing a delivery.",
  }),
  method: "post",
  path: "/v1/billing/webhooks/{id}/rotate-secret",
  summary: "Rotate a webhook endpoint's secret",
  request: { params: WebhookId },
  responses: {
    200: jsonResponse(WebhookEndpointWithSecret, "The endpoint with its new secret"),
    ...errorResponses(400, 401, 403, 404),
  },
});

export function registerRotateWebhookSecret(app: OpenAPIHono<AppEnv>) {
  app.openapi(rotateWebhookSecretRoute, async (c) => {
    const { endpoint, secret } = await rotateWebhookSecret(billingContext(c.get("deps")), {
      orgId: principalOrgId(c),
      id: c.req.valid("param").id,
    });
    return c.json({ ...webhookEndpointJson(endpoint), secret }, 200);
  });
}
