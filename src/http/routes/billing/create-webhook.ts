import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { createWebhookEndpoint } from "../../../billing/webhooks/endpoints.js";
import { billingContext, type AppEnv } from "../../context.js";
import { principalOrgId } from "../../middleware/auth.js";
import { requiresKey } from "../access.js";
import { errorResponses, jsonBody, jsonResponse } from "../../schemas.js";
import { WebhookEndpointWithSecret, webhookEndpointJson, WebhookEventTypes, WebhookUrl } from "./schemas.js";

export const CreateWebhookRequest = z
  .object({
    url: WebhookUrl,
    events: WebhookEventTypes.default([]).openapi({ description: "Event types to receive; empty or absent: all" }),
    enabled: z.boolean().default(true),
  })
  .strict()
  .openapi("CreateWebhook", { example: { url: "https://example.com/hooks/hanzo", events: ["balance.low"] } });
export type CreateWebhookRequest = z.infer<typeof CreateWebhookRequest>;

export const createWebhookRoute = createRoute({
  operationId: "createWebhook",
  ...requiresKey({
    scope: "org",
    area: "billing",
    description:
      "Registers an endpoint for the organization's events (the `webhooks` of this document). The answer holds " +
      "the signing secret, shown this once.",
  }),
  method: "post",
  path: "/v1/billing/webhooks",
  summary: "Create a webhook endpoint",
  request: { body: jsonBody(CreateWebhookRequest) },
  responses: {
    201: jsonResponse(WebhookEndpointWithSecret, "Created, with its secret"),
    ...errorResponses(400, 401, 403, 409),
  },
});

export function registerCreateWebhook(app: OpenAPIHono<AppEnv>) {
  app.openapi(createWebhookRoute, async (c) => {
    const deps = c.get("deps");
    const body = c.req.valid("json");
    const { endpoint, secret } = await createWebhookEndpoint(billingContext(deps), {
      orgId: principalOrgId(c),
      url: body.url,
      events: body.events,
      enabled: body.enabled,
      policy: { allowLocalhost: deps.config.WEBHOOK_ALLOW_LOCALHOST },
    });
    return c.json({ ...webhookEndpointJson(endpoint), secret }, 201);
  });
}
