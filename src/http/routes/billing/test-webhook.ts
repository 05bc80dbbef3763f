import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { sendTestEvent } from "../../../billing/webhooks/endpoints.js";
import { enqueueDeliveries } from "../../../jobs/enqueue.js";
import { billingContext, type AppEnv } from "../../context.js";
import { principalOrgId } from "../../middleware/auth.js";
import { requiresKey } from "../access.js";
import { errorResponses, jsonResponse } from "../../schemas.js";
import { WebhookId } from "./schemas.js";

export const TestWebhookResponse = z
  .object({ event_id: z.string(), delivery_id: z.string() })
  .openapi("WebhookTestSent");
export type TestWebhookResponse = z.infer<typeof TestWebhookResponse>;

export const testWebhookRoute = createRoute({
  operationId: "testWebhook",
  ...requiresKey({
    scope: "org",
    area: "billing",
    description:
      "Sends a `test.ping` event to this endpoint only, enabled or not, signed like every delivery and " +
      "retried like one. It is in the event log too.",
  }),
  method: "post",
  path: "/v1/billing/webhooks/{id}/test",
  summary: "Send a test event",
  request: { params: WebhookId },
  responses: {
    202: jsonResponse(TestWebhookResponse, "Queued for delivery"),
    ...errorResponses(400, 401, 403, 404),
  },
});

export function registerTestWebhook(app: OpenAPIHono<AppEnv>) {
  app.openapi(testWebhookRoute, async (c) => {
    const deps = c.get("deps");
    const sent = await sendTestEvent(billingContext(deps), { orgId: principalOrgId(c), id: c.req.valid("param").id });
    // A nudge: without it (or if it is lost) the workers' sweep finds the due delivery.
    if (deps.queues)
      await enqueueDeliveries(deps.queues, [{ id: sent.deliveryId, attempts: 0 }]).catch((err: unknown) =>
        deps.logger.warn({ err, delivery_id: sent.deliveryId }, "could not enqueue a test delivery; the sweep will"),
      );
    return c.json({ event_id: sent.eventId, delivery_id: sent.deliveryId }, 202);
  });
}
