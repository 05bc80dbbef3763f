import type { Logger } from "pino";
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { Metering, UsageInput } from "../../../billing/metering.js";
import type { UsageResult } from "../../../billing/usage.js";
import { isConnectionError } from "../../../db/connection-errors.js";
import { BillingError } from "../../../errors.js";
import { usdFields } from "../../present.js";
import type { AppEnv } from "../../context.js";
import { requiresKey } from "../access.js";
import { fromZodError } from "../../errors.js";
import { errorResponses, jsonBody, jsonResponse, safeText, Timestamp } from "../../schemas.js";
import {
  ApiKeyIdField,
  IdempotencyKeyField,
  ModelField,
  OrgIdField,
  ProductField,
  ProjectField,
  Quantities,
} from "./schemas.js";
import { quickUsageEvent } from "./quick-parse.js";

export const MAX_EVENTS_PER_BATCH = 1000;

export const UsageEvent = z
  .object({
    idempotency_key: IdempotencyKeyField,
    org_id: OrgIdField,
    timestamp: Timestamp.openapi({
      description: "When the usage happened; priced by the catalog version in force then",
    }),
    product: ProductField,
    model: ModelField,
    quantities: Quantities,
    hold_id: safeText(1, 64)
      .optional()
      .openapi({ description: "The hold from /v1/billing/authorize that this event settles" }),
    api_key_id: ApiKeyIdField,
    project: ProjectField,
  })
  .strict()
  .openapi("UsageEvent");
export type UsageEvent = z.input<typeof UsageEvent>;

// The batch is validated loosely so that one bad event is reported alone instead of sinking the rest.
export const UsageBatchRequest = z
  .object({
    events: z
      .array(z.unknown())
      .min(1)
      .max(MAX_EVENTS_PER_BATCH)
      .openapi({ type: "array", items: { $ref: "#/components/schemas/UsageEvent" } }),
  })
  .strict()
  .openapi("UsageBatch", {
    example: {
      events: [
        {
          idempotency_key: "gw-req-7f3a9c",
          org_id: "org_4fJ2kQ9x0cT1mB7rW3yZ",
          timestamp: "2026-11-15T12:00:03Z",
          product: "llm",
          model: "zen-pro",
          quantities: { input_tokens: 1180, output_tokens: 642 },
          hold_id: "hold_8kP2mN4qR6sT1vW3xY5z",
        },
      ],
    },
  });
export type UsageBatchRequest = { events: UsageEvent[] };

export const EventResult = z
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
    hold_outcome: z.enum(["released", "already_closed"]).nullable().optional().openapi({
      description:
        "`released`: this event settled its hold. `already_closed`: the hold was settled by an earlier event or had expired, and the cost is charged in full.",
    }),
    error: z.object({ code: z.string(), message: z.string(), param: z.string().optional() }).optional(),
  })
  .openapi("UsageEventResult");

export const UsageBatchResponse = z.object({
  results: z.array(EventResult),
  recorded: z.number(),
  duplicates: z.number(),
  rejected: z.number(),
});
export type UsageBatchResponse = z.infer<typeof UsageBatchResponse>;

export const reportUsageRoute = createRoute({
  operationId: "reportUsage",
  ...requiresKey({
    scope: "gateway",
    area: "gateway",
    description:
      "Each event is priced, debited and its hold settled in one durable commit before the response. A repeated idempotency key " +
      "returns the first result (`duplicate`) and charges nothing. Results are per event, in order; one bad event does not sink the others.",
  }),
  method: "post",
  path: "/v1/billing/usage",
  summary: "Report a batch of usage events (idempotent per event)",
  request: { body: jsonBody(UsageBatchRequest) },
  responses: {
    200: jsonResponse(UsageBatchResponse, "Per-event results"),
    ...errorResponses(400, 401, 403),
  },
});

export type EventResultJson = z.infer<typeof EventResult>;

/** The contract's name for a hold this event settled is `released`. */
export function holdOutcomeJson(outcome: UsageResult["holdOutcome"]): EventResultJson["hold_outcome"] {
  return outcome === "settled" ? "released" : outcome;
}

function resultJson(index: number, r: UsageResult): EventResultJson {
  return {
    index,
    idempotency_key: r.idempotencyKey,
    status: r.replayed ? "duplicate" : "recorded",
    usage_id: r.usageId,
    ...usdFields("cost", r.cost),
    catalog_version: r.catalogVersion,
    hold_id: r.holdId,
    hold_outcome: holdOutcomeJson(r.holdOutcome),
  };
}

function rejectedJson(index: number, key: string | null, err: unknown, logger?: Logger): EventResultJson {
  if (!(err instanceof BillingError)) {
    // Not the event's fault. The other events of the report may be recorded already, so the
    // answer still says what became of each; this one is safe to retry with its key.
    logger?.error({ err, index }, "usage event failed");
    return {
      index,
      idempotency_key: key,
      status: "rejected",
      error: isConnectionError(err)
        ? {
            code: "database_unavailable",
            message:
              "the link to the billing database was lost: this event may or may not have been recorded; retry it with the same idempotency_key",
          }
        : {
            code: "internal_error",
            message: "this event could not be recorded; retry it with the same idempotency_key",
          },
    };
  }
  const e = err;
  const param = typeof e.details?.param === "string" ? e.details.param : undefined;
  return {
    index,
    idempotency_key: key,
    status: "rejected",
    error: { code: e.code, message: e.message, ...(param ? { param } : {}) },
  };
}

export function registerReportUsage(app: OpenAPIHono<AppEnv>) {
  // UsageBatch refers to UsageEvent by hand (the batch validates events one by one, below), so
  // nothing else would put UsageEvent into the document's components.
  app.openAPIRegistry.register("UsageEvent", UsageEvent);
  app.openapi(reportUsageRoute, async (c) => {
    const { metering, clock, logger } = c.get("deps");
    const now = clock();
    const events = c.req.valid("json").events;
    // Each event is validated on its own, so one bad event is answered alone; the valid ones
    // go to metering together (one promise for the report, not one per event).
    const results: EventResultJson[] = new Array(events.length);
    const { indexes, outcomes } = submitValid(metering, events, results, now);
    (await outcomes).forEach((outcome, j) => {
      const index = indexes[j];
      if (index === undefined) throw new Error("metering answered more outcomes than events were submitted");
      results[index] =
        outcome instanceof Error
          ? rejectedJson(index, keyOf(events[index]), outcome, logger)
          : resultJson(index, outcome);
    });
    let recorded = 0;
    let duplicates = 0;
    for (const r of results) {
      if (r.status === "recorded") recorded++;
      else if (r.status === "duplicate") duplicates++;
    }
    return c.json({ results, recorded, duplicates, rejected: results.length - recorded - duplicates }, 200);
  });
}

/**
 * Validates each event on its own (a bad one is answered alone, in `results`) and hands the
 * valid ones to metering together: one promise for the report, not one per event. The
 * validated inputs are not kept here while the report is written, so only metering's copy
 * lives that long (a report's objects otherwise outlive young-generation GCs and swell the heap).
 */
function submitValid(metering: Metering, events: unknown[], results: EventResultJson[], now: Date) {
  const inputs: UsageInput[] = [];
  const indexes: number[] = [];
  events.forEach((raw, index) => {
    let e: z.infer<typeof UsageEvent> | undefined = quickUsageEvent(raw);
    if (!e) {
      const parsed = UsageEvent.safeParse(raw);
      if (!parsed.success) {
        results[index] = rejectedJson(index, keyOf(raw), fromZodError(parsed.error, `events.${index}`));
        return;
      }
      e = parsed.data;
    }
    inputs.push({
      orgId: e.org_id,
      idempotencyKey: e.idempotency_key,
      occurredAt: new Date(e.timestamp),
      product: e.product,
      model: e.model,
      quantities: e.quantities,
      holdId: e.hold_id,
      apiKeyId: e.api_key_id,
      project: e.project,
    });
    indexes.push(index);
  });
  return { indexes, outcomes: metering.recordUsageMany(inputs, now) };
}

function keyOf(raw: unknown): string | null {
  const key = (raw as { idempotency_key?: unknown } | null)?.idempotency_key;
  return typeof key === "string" ? key : null;
}
