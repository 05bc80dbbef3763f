import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { EventTypeNames, isEventType, type EventType } from "../../../billing/events/catalog.js";
import { eventEnvelope, listEvents } from "../../../billing/events/list-events.js";
import type { AppEnv } from "../../context.js";
import { principalOrgId } from "../../middleware/auth.js";
import { readMostly } from "../../read-mostly.js";
import { requiresKey } from "../access.js";
import { Cursor, errorResponses, jsonResponse, Limit } from "../../schemas.js";

export const BillingEventJson = z
  .object({
    id: z.string().openapi({ example: "evt_4QyK2m9TbX1sVnE8aLcR0w" }),
    type: z.enum(EventTypeNames),
    timestamp: z.string(),
    data: z.record(z.string(), z.unknown()).openapi({
      description: "The type's payload: its schema is the type's entry in this document's `webhooks`",
    }),
  })
  .openapi("BillingEvent");
export type BillingEventJson = z.infer<typeof BillingEventJson>;

export const EventPage = z.object({
  data: z.array(BillingEventJson),
  has_more: z.boolean(),
  next_cursor: z.string().nullable(),
});
export type EventPage = z.infer<typeof EventPage>;

/** `type=balance.low,deposit.credited`: one or more types, comma-separated. */
const TypeFilter = z
  .string()
  .max(500)
  .transform((text, ctx) => {
    const types = text.split(",").map((t) => t.trim());
    const unknown = types.find((t) => !isEventType(t));
    if (unknown !== undefined) {
      ctx.addIssue({ code: "custom", message: `unknown event type "${unknown.slice(0, 60)}"` });
      return z.NEVER;
    }
    return types as EventType[];
  })
  .optional()
  .openapi({ type: "string", description: "Only these event types, comma-separated", example: "balance.low" });

export const listEventsRoute = createRoute({
  operationId: "listEvents",
  ...requiresKey({
    scope: "org",
    area: "billing",
    description:
      "The organization's event log: every event its webhooks receive, kept here for clients that poll instead. Newest first in the order the events committed: an event that commits after a page was read is always listed above that page, so a client that reads until the first event it knows misses none.",
  }),
  method: "get",
  path: "/v1/billing/events",
  summary: "Events, newest first",
  request: { query: z.object({ limit: Limit, cursor: Cursor, type: TypeFilter }) },
  responses: {
    200: jsonResponse(EventPage, "A page of events"),
    ...errorResponses(400, 401, 403),
  },
});

export function registerListEvents(app: OpenAPIHono<AppEnv>) {
  app.openapi(listEventsRoute, async (c) => {
    const query = c.req.valid("query");
    const page = await readMostly(c, principalOrgId(c), (ctx) =>
      listEvents(ctx, {
        orgId: principalOrgId(c),
        limit: query.limit,
        cursor: query.cursor,
        types: query.type,
      }),
    );
    return c.json(
      {
        data: page.data.map((e) => eventEnvelope(e) as BillingEventJson),
        has_more: page.nextCursor !== null,
        next_cursor: page.nextCursor,
      },
      200,
    );
  });
}
