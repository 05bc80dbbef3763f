import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { getWebhookEndpoint } from "../../../billing/webhooks/endpoints.js";
import { billingContext, type AppEnv } from "../../context.js";
import { principalOrgId } from "../../middleware/auth.js";
import { requiresKey } from "../access.js";
import { errorResponses, jsonResponse } from "../../schemas.js";
import { WebhookEndpointJson, webhookEndpointJson, WebhookId } from "./schemas.js";

export const getWebhookRoute = createRoute({
  operationId: "getWebhook",
  ...requiresKey({ scope: "org", area: "billing" }),
  method: "get",
  path: "/v1/billing/webhooks/{id}",
  summary: "Get a webhook endpoint",
  request: { params: WebhookId },
  responses: {
    200: jsonResponse(WebhookEndpointJson, "The endpoint (without its secret)"),
    ...errorResponses(400, 401, 403, 404),
  },
});

export function registerGetWebhook(app: OpenAPIHono<AppEnv>) {
  app.openapi(getWebhookRoute, async (c) => {
    const endpoint = await getWebhookEndpoint(billingContext(c.get("deps")), {
      orgId: principalOrgId(c),
      id: c.req.valid("param").id,
    });
    return c.json(webhookEndpointJson(endpoint), 200);
  });
}
