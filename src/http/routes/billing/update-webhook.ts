import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { updateWebhookEndpoint } from "../../../billing/webhooks/endpoints.js";
import { billingContext, type AppEnv } from "../../context.js";
import { principalOrgId } from "../../middleware/auth.js";
import { requiresKey } from "../access.js";
import { errorResponses, jsonBody, jsonResponse } from "../../schemas.js";
import { WebhookEndpointJson, webhookEndpointJson, WebhookEventTypes, WebhookId, WebhookUrl } from "./schemas.js";

export const UpdateWebhookRequest = z
  .object({ url: WebhookUrl.optional(), events: WebhookEventTypes.optional(), enabled: z.boolean().optional() })
  .strict()
  .refine((b) => Object.keys(b).length > 0, "name at least one of url, events, enabled")
  .openapi("UpdateWebhook", { example: { enabled: true } });
export type UpdateWebhookRequest = z.infer<typeof UpdateWebhookRequest>;

export const updateWebhookRoute = createRoute({
  operationId: "updateWebhook",
  ...requiresKey({
    scope: "org",
    area: "billing",
    description: "Changes what is given. Enabling an endpoint that was disabled starts its count of failures afresh.",
  }),
  method: "patch",
  path: "/v1/billing/webhooks/{id}",
  summary: "Update a webhook endpoint",
  request: { params: WebhookId, body: jsonBody(UpdateWebhookRequest) },
  responses: {
    200: jsonResponse(WebhookEndpointJson, "The endpoint as updated"),
    ...errorResponses(400, 401, 403, 404),
  },
});

export function registerUpdateWebhook(app: OpenAPIHono<AppEnv>) {
  app.openapi(updateWebhookRoute, async (c) => {
    const deps = c.get("deps");
    const body = c.req.valid("json");
    const endpoint = await updateWebhookEndpoint(billingContext(deps), {
      orgId: principalOrgId(c),
      id: c.req.valid("param").id,
      ...body,
      policy: { allowLocalhost: deps.config.WEBHOOK_ALLOW_LOCALHOST },
    });
    return c.json(webhookEndpointJson(endpoint), 200);
  });
}
