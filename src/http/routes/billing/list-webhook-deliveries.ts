import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { listDeliveries } from "../../../billing/webhooks/endpoints.js";
import type { AppEnv } from "../../context.js";
import { principalOrgId } from "../../middleware/auth.js";
import { readMostly } from "../../read-mostly.js";
import { requiresKey } from "../access.js";
import { errorResponses, jsonResponse, Limit } from "../../schemas.js";
import { WebhookId } from "./schemas.js";

export const WebhookDelivery = z
  .object({
    id: z.string(),
    event_id: z.string(),
    event_type: z.string(),
    status: z.enum(["pending", "delivered", "failed"]),
    attempts: z.array(
      z.object({
        attempt: z.number(),
        status_code: z.number().nullable().openapi({ description: "The receiver's HTTP status; null when none came" }),
        error: z.string().nullable(),
        response: z.string().nullable().openapi({ description: "The first 1,000 characters of the answer" }),
        at: z.string(),
        duration_ms: z.number(),
      }),
    ),
    next_attempt_at: z.string().nullable(),
    delivered_at: z.string().nullable(),
    created_at: z.string(),
  })
  .openapi("WebhookDelivery");
export type WebhookDelivery = z.infer<typeof WebhookDelivery>;

export const WebhookDeliveryList = z.object({ data: z.array(WebhookDelivery), has_more: z.boolean() });
export type WebhookDeliveryList = z.infer<typeof WebhookDeliveryList>;

export const listWebhookDeliveriesRoute = createRoute({
  operationId: "listWebhookDeliveries",
  ...requiresKey({
    scope: "org",
    area: "billing",
    description: "The endpoint's newest deliveries with every attempt.",
  }),
  method: "get",
  path: "/v1/billing/webhooks/{id}/deliveries",
  summary: "A webhook endpoint's deliveries",
  request: { params: WebhookId, query: z.object({ limit: Limit }) },
  responses: {
    200: jsonResponse(WebhookDeliveryList, "Newest first"),
    ...errorResponses(400, 401, 403, 404),
  },
});

export function registerListWebhookDeliveries(app: OpenAPIHono<AppEnv>) {
  app.openapi(listWebhookDeliveriesRoute, async (c) => {
    const page = await readMostly(c, principalOrgId(c), (ctx) =>
      listDeliveries(ctx, {
        orgId: principalOrgId(c),
        endpointId: c.req.valid("param").id,
        limit: c.req.valid("query").limit,
      }),
    );
    return c.json(
      {
        has_more: page.hasMore,
        data: page.data.map((d) => ({
          id: d.id,
          event_id: d.eventId,
          event_type: d.eventType,
          status: d.status,
          attempts: d.attempts.map((a) => ({
            attempt: a.attempt,
            status_code: a.statusCode,
            error: a.error,
            response: a.responseExcerpt,
            at: a.startedAt.toISOString(),
            duration_ms: a.durationMs,
          })),
          next_attempt_at: d.nextAttemptAt?.toISOString() ?? null,
          delivered_at: d.deliveredAt?.toISOString() ?? null,
          created_at: d.createdAt.toISOString(),
        })),
      },
      200,
    );
  });
}
