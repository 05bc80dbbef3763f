import type { BillingContext } from "../context.js";
import { periodUsageEvents } from "../usage-report.js";
import { toUsageGroup, type UsageGroup, usageRollupQuery } from "../usage-rollup.js";
import { cursorBatches } from "./cursor-batches.js";
import type { ExportPeriod } from "./export-period.js";

/**
 * What a usage export is grouped by: `day`, one row per UTC day, product and model (what
 * GET /v1/billing/usage shows with granularity=day&group_by=product,model); `product_model`, one
 * row per product and model for the whole period (its `products[].models[]`); `event`, one row
 * per usage event.
 */
export const USAGE_EXPORT_GROUPS = ["day", "product_model", "event"] as const;
export type UsageExportGroup = (typeof USAGE_EXPORT_GROUPS)[number];

/**
 * The period's usage rolled up (usageRollupQuery over periodUsageEvents: the same groups, sums
 * and events as the usage report), `day` first by day. Batches of groups, read through a cursor;
 * ending the iteration early closes the cursor and frees the connection.
 */
export async function* usageGroupsForExport(
  ctx: BillingContext,
  input: { orgId: string; period: ExportPeriod; group: "day" | "product_model" },
): AsyncGenerator<UsageGroup[]> {
  const byDay = input.group === "day";
  const query = usageRollupQuery(
    ctx.sql,
    periodUsageEvents(ctx.sql, input.orgId, input.period),
    { day: byDay },
    byDay ? "day" : "group",
  );
  yield* cursorBatches(query, toUsageGroup);
}

/** One usage event as the export shows it; quantities in the order of `meters`. */
export type UsageEventRow = {
  id: string;
  /** ISO 8601 in UTC to the millisecond, as Date.toISOString writes it. */
  occurred_at: string;
  recorded_at: string;
  product: string;
  model: string;
  /** Each meter's quantity as exact integer text, null where not measured. */
  quantities: (string | null)[];
  cost: bigint;
  api_key_id: string | null;
  project: string | null;
  hold_id: string | null;
};

/** A row as PostgreSQL returns it: `q0`, `q1`… the quantities of meters[0], meters[1]… */
type EventRecord = Omit<UsageEventRow, "quantities"> & Record<`q${number}`, string | null>;

/**
 * A timestamptz as Date.toISOString writes it (`2026-01-01T00:00:00.000Z`): formatted by
 * PostgreSQL, which truncates the microseconds to milliseconds as parsing them into a Date does,
 * so the export needs no Date per timestamp.
 */
const isoUtc = (sql: BillingContext["sql"], column: "occurred_at" | "recorded_at") =>
  sql`to_char(${sql(column)} at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.MS"Z"')`;

/**
 * The usage events of the period (the report's selection: occurred in [start, end)), oldest
 * first, in batches through a cursor. Each quantity is read as text by `quantities ->> meter`,
 * one column per meter, so no quantity ever passes through a JavaScript number; timestamps come
 * formatted. This is the export of a busy organization's year (a million rows and more), so the
 * row is what the CSV needs and little else (bench/exports.ts measures it).
 */
export async function* usageEventsForExport(
  ctx: BillingContext,
  input: { orgId: string; period: ExportPeriod; meters: readonly string[] },
): AsyncGenerator<UsageEventRow[]> {
  const { sql } = ctx;
  const columns = input.meters.map((_, i) => `q${i}` as const);
  const quantityColumns = input.meters.map((meter, i) => sql`, quantities ->> ${meter}::text as ${sql(`q${i}`)}`);
  const query = sql<EventRecord[]>`
    select id, ${isoUtc(sql, "occurred_at")} as occurred_at, ${isoUtc(sql, "recorded_at")} as recorded_at,
      product, model, cost, api_key_id, project, hold_id ${quantityColumns.length > 0 ? quantityColumns : sql``}
    from usage_events
    where org_id = ${input.orgId} and occurred_at >= ${input.period.start} and occurred_at < ${input.period.end}
    order by occurred_at, id`;
  yield* cursorBatches(query, (r) => ({
    id: r.id,
    occurred_at: r.occurred_at,
    recorded_at: r.recorded_at,
    product: r.product,
    model: r.model,
    quantities: columns.map((c) => r[c] ?? null),
    cost: r.cost,
    api_key_id: r.api_key_id,
    project: r.project,
    hold_id: r.hold_id,
  }));
}
