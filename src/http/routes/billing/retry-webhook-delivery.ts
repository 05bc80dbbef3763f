import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { retryDelivery } from "../../../billing/webhooks/endpoints.js";
import { enqueueDeliveries } from "../../../jobs/enqueue.js";
import { billingContext, type AppEnv } from "../../context.js";
import { principalOrgId } from "../../middleware/auth.js";
import { requiresKey } from "../access.js";
import { errorResponses, jsonResponse } from "../../schemas.js";

export const RetriedDelivery = z.object({ id: z.string(), status: z.literal("pending") }).openapi("RetriedDelivery");
export type RetriedDelivery = z.infer<typeof RetriedDelivery>;

export const retryWebhookDeliveryRoute = createRoute({
  operationId: "retryWebhookDelivery",
  ...requiresKey({
    scope: "org",
    area: "billing",
    description: "Tries a failed or pending delivery again now (same event id). A delivered one is 409.",
  }),
  method: "post",
  path: "/v1/billing/webhooks/{id}/deliveries/{delivery_id}/retry",
  summary: "Retry a webhook delivery",
  request: { params: z.object({ id: z.string().max(64), delivery_id: z.string().max(64) }) },
  responses: {
    202: jsonResponse(RetriedDelivery, "Due now"),
    ...errorResponses(400, 401, 403, 404, 409),
  },
});

export function registerRetryWebhookDelivery(app: OpenAPIHono<AppEnv>) {
  app.openapi(retryWebhookDeliveryRoute, async (c) => {
    const deps = c.get("deps");
    const { id, delivery_id } = c.req.valid("param");
    const { attempts } = await retryDelivery(billingContext(deps), {
      orgId: principalOrgId(c),
      endpointId: id,
      deliveryId: delivery_id,
    });
    // A nudge: the workers' sweep finds the due attempt without it.
    if (deps.queues)
      await enqueueDeliveries(deps.queues, [{ id: delivery_id, attempts, tag: `retry${Date.now()}` }]).catch(
        (err: unknown) =>
          deps.logger.warn({ err, delivery_id }, "could not enqueue a retried delivery; the sweep will"),
      );
    return c.json({ id: delivery_id, status: "pending" as const }, 202);
  });
}
