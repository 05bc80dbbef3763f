import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { UsageResult } from "../../../billing/usage.js";
import { BillingError } from "../../../errors.js";
import { formatUsd, formatUsdNumber } from "../../../ledger/money.js";
import type { AppEnv } from "../../context.js";
import { fromZodError } from "../../errors.js";
import { requireScope } from "../../middleware/auth.js";
import { errorResponses, jsonBody, jsonResponse, safeText } from "../../schemas.js";
import { IdempotencyKeyField, ModelField, OrgIdField, ProductField, Quantities } from "./schemas.js";

export const MAX_EVENTS_PER_BATCH = 1000;

export const UsageEvent = z
  .object({
    idempotency_key: IdempotencyKeyField,
    org_id: OrgIdField,
    timestamp: z.iso.datetime({ offset: true }).openapi({ description: "When the usage happened; priced by the catalog version in force then" }),
    product: ProductField,
    model: ModelField,
    quantities: Quantities,
    hold_id: safeText(1, 64).optional().openapi({ description: "The hold from /v1/billing/authorize to release" }),
  })
  .strict()
  .openapi("UsageEvent");

// The batch is validated loosely so that one bad event is reported alone instead of sinking the rest.
export const UsageBatchRequest = z.object({ events: z.array(z.unknown()).min(1).max(MAX_EVENTS_PER_BATCH).openapi({ type: "array", items: { $ref: "#/components/schemas/UsageEvent" } }) }).strict().openapi("UsageBatch");

const EventResult = z
  .object({
    index: z.number().int(),
    idempotency_key: z.string().nullable(),
    status: z.enum(["recorded", "duplicate", "rejected"]),
    usage_id: z.string().optional(),
    cost: z.number().optional(),
    cost_usd: z.string().optional(),
    cost_nano_usd: z.string().optional(),
    catalog_version: z.string().optional(),
    hold_id: z.string().nullable().optional(),
    hold_outcome: z.enum(["released", "already_closed"]).nullable().optional(),
    error: z.object({ code: z.string(), message: z.string(), param: z.string().optional() }).optional(),
  })
  .openapi("UsageEventResult");

const usageRoute = createRoute({
  method: "post",
  path: "/v1/billing/usage",
  tags: ["gateway"],
  summary: "Report a batch of usage events (idempotent per event)",
  description:
    "Each event is priced, debited and its hold released in one durable commit before the response. A repeated idempotency key " +
    "returns the first result (`duplicate`) and charges nothing. Results are per event, in order; one bad event does not sink the others.",
  security: [{ bearer: [] }],
  middleware: [requireScope("gateway")] as const,
  request: { body: jsonBody(UsageBatchRequest) },
  responses: {
    200: jsonResponse(z.object({ results: z.array(EventResult), recorded: z.number(), duplicates: z.number(), rejected: z.number() }), "Per-event results"),
    ...errorResponses(400, 401, 403),
  },
});

type EventResultJson = z.infer<typeof EventResult>;

function resultJson(index: number, r: UsageResult): EventResultJson {
  return {
    index,
    idempotency_key: r.idempotencyKey,
    status: r.replayed ? "duplicate" : "recorded",
    usage_id: r.usageId,
    cost: formatUsdNumber(r.cost),
    cost_usd: formatUsd(r.cost),
    cost_nano_usd: r.cost.toString(),
    catalog_version: r.catalogVersion,
    hold_id: r.holdId,
    hold_outcome: r.holdOutcome,
  };
}

function rejectedJson(index: number, key: string | null, err: unknown): EventResultJson {
  const e = err instanceof BillingError ? err : null;
  if (!e) throw err; // not the event's fault: let the error handler answer 500 and log it
  const param = typeof e.details?.param === "string" ? e.details.param : undefined;
  return { index, idempotency_key: key, status: "rejected", error: { code: e.code, message: e.message, ...(param ? { param } : {}) } };
}

export function registerUsageIngest(app: OpenAPIHono<AppEnv>) {
  app.openapi(usageRoute, async (c) => {
    const { metering, clock } = c.get("deps");
    const now = clock();
    const results = await Promise.all(
      c.req.valid("json").events.map(async (raw, index): Promise<EventResultJson> => {
        const parsed = UsageEvent.safeParse(raw);
        const key = typeof (raw as { idempotency_key?: unknown })?.idempotency_key === "string" ? (raw as { idempotency_key: string }).idempotency_key : null;
        if (!parsed.success) return rejectedJson(index, key, fromZodError(parsed.error, `events.${index}`));
        const e = parsed.data;
        try {
          const result = await metering.recordUsage(
            { orgId: e.org_id, idempotencyKey: e.idempotency_key, occurredAt: new Date(e.timestamp), product: e.product, model: e.model, quantities: e.quantities, holdId: e.hold_id },
            now,
          );
          return resultJson(index, result);
        } catch (err) {
          return rejectedJson(index, key, err);
        }
      }),
    );
    const count = (s: EventResultJson["status"]) => results.filter((r) => r.status === s).length;
    return c.json({ results, recorded: count("recorded"), duplicates: count("duplicate"), rejected: count("rejected") }, 200);
  });
}
