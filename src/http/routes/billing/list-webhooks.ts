import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { listWebhookEndpoints } from "../../../billing/webhooks/endpoints.js";
import { billingContext, type AppEnv } from "../../context.js";
import { principalOrgId } from "../../middleware/auth.js";
import { requiresKey } from "../access.js";
import { errorResponses, jsonResponse } from "../../schemas.js";
import { WebhookEndpointJson, webhookEndpointJson } from "./schemas.js";

export const WebhookEndpointList = z.object({ data: z.array(WebhookEndpointJson) });
export type WebhookEndpointList = z.infer<typeof WebhookEndpointList>;

export const listWebhooksRoute = createRoute({
  operationId: "listWebhooks",
  ...requiresKey({ scope: "org", area: "billing" }),
  method: "get",
  path: "/v1/billing/webhooks",
  summary: "List webhook endpoints",
  responses: {
    200: jsonResponse(WebhookEndpointList, "The organization's endpoints, oldest first (at most 20)"),
    ...errorResponses(401, 403),
  },
});

export function registerListWebhooks(app: OpenAPIHono<AppEnv>) {
  app.openapi(listWebhooksRoute, async (c) => {
    const endpoints = await listWebhookEndpoints(billingContext(c.get("deps")), { orgId: principalOrgId(c) });
    return c.json({ data: endpoints.map(webhookEndpointJson) }, 200);
  });
}
