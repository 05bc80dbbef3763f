import type { Sql, TransactionSql } from "../db/client.js";
import type { BillingContext } from "./context.js";
import type { Period } from "./periods.js";
import { rollUpUsage, type UsageGroup } from "./usage-rollup.js";

export type UsageLine = { quantities: Record<string, bigint>; cost: bigint; events: number };
/** What the report can be grouped by (`group_by`): `key` is the attributed API key, `project` the attributed project. */
export const USAGE_DIMENSIONS = ["product", "model", "key", "project"] as const;
export type UsageDimension = (typeof USAGE_DIMENSIONS)[number];
/** One group of a grouped report: the values of the dimensions grouped by (others absent); null = unattributed. */
export type UsageGroupLine = UsageLine & {
  product?: string;
  model?: string;
  key?: string | null;
  project?: string | null;
};
export type UsageDay = UsageLine & { date: string; groups?: UsageGroupLine[] };
export type UsageReport = {
  period: Period;
  total: bigint;
  products: (UsageLine & { product: string; models: (UsageLine & { model: string })[] })[];
  /** With groupBy: the period's usage per combination of the dimensions, in their order. */
  groups?: UsageGroupLine[];
  /** With granularity "day": one bucket per UTC day of the period, in order (empty days included). */
  days?: UsageDay[];
};

function add(line: UsageLine, g: UsageLine) {
  line.cost += g.cost;
  line.events += g.events;
  for (const [meter, q] of Object.entries(g.quantities)) line.quantities[meter] = (line.quantities[meter] ?? 0n) + q;
}

/** Sums rolled-up groups into one line per combination of `by`, in the roll-up's order of first appearance. */
function groupLines(groups: UsageGroup[], by: readonly UsageDimension[]): UsageGroupLine[] {
  const lines = new Map<string, UsageGroupLine>();
  for (const g of groups) {
    const values: Partial<Record<UsageDimension, string | null>> = {
      product: g.product,
      model: g.model,
      key: g.apiKeyId,
      project: g.project,
    };
    const id = JSON.stringify(by.map((d) => values[d]));
    let line = lines.get(id);
    if (!line) {
      line = { quantities: {}, cost: 0n, events: 0 };
      for (const d of by) (line as Record<string, unknown>)[d] = values[d];
      lines.set(id, line);
    }
    add(line, g);
  }
  return [...lines.values()];
}

/** The UTC days [start, end) of a period, YYYY-MM-DD. */
function daysOf(period: Period): string[] {
  const days: string[] = [];
  for (
    let t = Date.UTC(period.start.getUTCFullYear(), period.start.getUTCMonth(), period.start.getUTCDate());
    t < period.end.getTime();
    t += 86_400_000
  )
    days.push(new Date(t).toISOString().slice(0, 10));
  return days;
}

/**
 * The events the usage report counts, as the roll-up's source: the org's events that occurred in
 * [start, end), none late, with their attribution and UTC day. The usage export reads the same.
 */
export function periodUsageEvents(sql: Sql | TransactionSql, orgId: string, period: Pick<Period, "start" | "end">) {
  return sql`
    select false as late, product, model, quantities, cost, api_key_id, project,
      (occurred_at at time zone 'UTC')::date as day
    from usage_events
    where org_id = ${orgId} and occurred_at >= ${period.start} and occurred_at < ${period.end}`;
}

/**
 * Quantities and cost by product and model for events that occurred in the period (rollUpUsage),
 * and, when asked, grouped by any of product, model, key and project, and in daily (UTC) buckets.
 * Every view sums the same roll-up groups, so each one's total is the period's total.
 */
export async function usageReport(
  ctx: BillingContext,
  input: { orgId: string; period: Period; groupBy?: readonly UsageDimension[]; granularity?: "day" },
): Promise<UsageReport> {
  const { orgId, period, groupBy, granularity } = input;
  const split = { key: groupBy?.includes("key"), project: groupBy?.includes("project"), day: granularity === "day" };
  const groups = await rollUpUsage(ctx.sql, periodUsageEvents(ctx.sql, orgId, period), split);
  const products = new Map<string, UsageReport["products"][number]>();
  const models = new Map<string, UsageLine & { model: string }>();
  for (const g of groups) {
    let product = products.get(g.product);
    if (!product) {
      product = { product: g.product, quantities: {}, cost: 0n, events: 0, models: [] };
      products.set(g.product, product);
    }
    const modelId = JSON.stringify([g.product, g.model]);
    let model = models.get(modelId);
    if (!model) {
      model = { model: g.model, quantities: {}, cost: 0n, events: 0 };
      models.set(modelId, model);
      product.models.push(model);
    }
    add(model, g);
    add(product, g);
  }
  const list = [...products.values()];
  const report: UsageReport = { period, total: list.reduce((s, p) => s + p.cost, 0n), products: list };
  if (groupBy) report.groups = groupLines(groups, groupBy);
  if (granularity === "day") {
    const byDay = new Map<string, UsageGroup[]>();
    for (const g of groups) {
      if (g.day === null) continue;
      const list = byDay.get(g.day) ?? [];
      list.push(g);
      byDay.set(g.day, list);
    }
    report.days = daysOf(period).map((date) => {
      const day: UsageDay = { date, quantities: {}, cost: 0n, events: 0 };
      const dayGroups = byDay.get(date) ?? [];
      for (const g of dayGroups) add(day, g);
      if (groupBy) day.groups = groupLines(dayGroups, groupBy);
      return day;
    });
  }
  return report;
}
