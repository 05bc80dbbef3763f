import type { BillingContext } from "../context.js";
import { periodUsageEvents } from "../usage-report.js";
import { toUsageGroup, type UsageGroup, usageRollupQuery } from "../usage-rollup.js";
import type { ExportPeriod } from "./export-period.js";

/**
 * What a usage export is grouped by: `day`, one row per UTC day, product and model (what
 * GET /v1/billing/usage shows with granularity=day&group_by=product,model); `product_model`, one
 * row per product and model for the whole period (its `products[].models[]`); `event`, one row
 * per usage event.
 */
export const USAGE_EXPORT_GROUPS = ["day", "product_model", "event"] as const;
export type UsageExportGroup = (typeof USAGE_EXPORT_GROUPS)[number];

/** How many rows each round trip of an export's cursor fetches: small enough to hold, big enough to stream fast. */
export const EXPORT_BATCH_ROWS = 1000;

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
  for await (const rows of query.cursor(EXPORT_BATCH_ROWS)) yield rows.map(toUsageGroup);
}

/** One usage event as the export shows it; quantities in the order of `meters`. */
export type UsageEventRow = {
  id: string;
  occurred_at: Date;
  recorded_at: Date;
  product: string;
  model: string;
  /** Each meter's quantity as exact integer text, '' where not measured. */
  quantities: string[];
  cost: bigint;
  api_key_id: string | null;
  project: string | null;
  hold_id: string | null;
};

/**
 * The usage events of the period (the report's selection: occurred in [start, end)), oldest
 * first, in batches through a cursor. Quantities are read as text in SQL, so no quantity ever
 * passes through a JavaScript number.
 */
export async function* usageEventsForExport(
  ctx: BillingContext,
  input: { orgId: string; period: ExportPeriod; meters: readonly string[] },
): AsyncGenerator<UsageEventRow[]> {
  const { sql } = ctx;
  const query = sql<UsageEventRow[]>`
    select id, occurred_at, recorded_at, product, model, cost, api_key_id, project, hold_id,
      array(select coalesce(quantities ->> m, '') from unnest(${input.meters as string[]}::text[]) with ordinality u(m, pos) order by pos) as quantities
    from usage_events
    where org_id = ${input.orgId} and occurred_at >= ${input.period.start} and occurred_at < ${input.period.end}
    order by occurred_at, id`;
  for await (const rows of query.cursor(EXPORT_BATCH_ROWS)) yield rows;
}
