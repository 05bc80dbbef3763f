import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { deleteWebhookEndpoint } from "../../../billing/webhooks/endpoints.js";
import { billingContext, type AppEnv } from "../../context.js";
import { principalOrgId } from "../../middleware/auth.js";
import { requiresKey } from "../access.js";
import { errorResponses, jsonResponse } from "../../schemas.js";
import { WebhookId } from "./schemas.js";

export const DeletedWebhook = z.object({ id: z.string(), deleted: z.literal(true) }).openapi("DeletedWebhook");
export type DeletedWebhook = z.infer<typeof DeletedWebhook>;

export const deleteWebhookRoute = createRoute({
  operationId: "deleteWebhook",
  ...requiresKey({
    scope: "org",
    area: "billing",
    description: "The endpoint receives nothing more, including attempts already scheduled.",
  }),
  method: "delete",
  path: "/v1/billing/webhooks/{id}",
  summary: "Delete a webhook endpoint",
  request: { params: WebhookId },
  responses: {
    200: jsonResponse(DeletedWebhook, "Deleted"),
    ...errorResponses(400, 401, 403, 404),
  },
});

export function registerDeleteWebhook(app: OpenAPIHono<AppEnv>) {
  app.openapi(deleteWebhookRoute, async (c) => {
    const { id } = c.req.valid("param");
    await deleteWebhookEndpoint(billingContext(c.get("deps")), { orgId: principalOrgId(c), id });
    return c.json({ id, deleted: true as const }, 200);
  });
}
