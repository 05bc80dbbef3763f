import type postgres from "postgres";
import type { Sql, TransactionSql } from "../db/client.js";

/** Usage summed for one product and model (and lateness, key, project and day: see rollUpUsage). */
export type UsageGroup = {
  late: boolean;
  product: string;
  model: string;
  /** The API key the events were attributed to (null: none); always null unless split by key. */
  apiKeyId: string | null;
  /** The project the events were attributed to (null: none); always null unless split by project. */
  project: string | null;
  /** The UTC day the events occurred on, YYYY-MM-DD; always null unless split by day. */
  day: string | null;
  cost: bigint;
  events: number;
  /** Each meter's summed quantity, meters in name order. */
  quantities: Record<string, bigint>;
};

/** Further splits of the roll-up; the events fragment must then select `api_key_id`, `project`, `day` (a date). */
export type RollUpSplit = { key?: boolean; project?: boolean; day?: boolean };

/** A roll-up row as PostgreSQL returns it (sums as exact numeric text). */
export type UsageGroupRow = {
  late: boolean;
  product: string;
  model: string;
  api_key_id: string | null;
  project: string | null;
  day: string | null;
  cost: string;
  events: number;
  quantities: [string, string][];
};

/**
 * The order of the groups: `group` is late, product, model, key, project, day (nulls last);
 * `day` puts the day first (then late, product, model, key, project), for a day-by-day export.
 */
export type RollUpOrder = "group" | "day";

/**
 * The usage roll-up, the one the usage report, invoices and the usage export all use: the events
 * of `events` (a query fragment selecting `late, product, model, quantities, cost` from
 * usage_events, and the columns `split` asks for; which events, and which count as late, is the
 * caller's) summed per lateness, product and model (and API key, project and day when split by
 * them): cost, number of events, and each meter's quantity, exactly (numeric sums).
 *
 * The query itself, not yet run: rollUpUsage awaits it, the export reads it through a cursor
 * (`.cursor(n)`), and both turn its rows into groups with toUsageGroup.
 */
export function usageRollupQuery(
  sql: Sql | TransactionSql,
  events: postgres.PendingQuery<postgres.Row[]>,
  split: RollUpSplit = {},
  order: RollUpOrder = "group",
): postgres.PendingQuery<UsageGroupRow[]> {
  return sql<UsageGroupRow[]>`
    with source as (${events}),
    events as (
      select late, product, model, quantities, cost,
        ${split.key ? sql`api_key_id` : sql`null::text`} as api_key_id,
        ${split.project ? sql`project` : sql`null::text`} as project,
        ${split.day ? sql`day::text` : sql`null::text`} as day
      from source
    ),
    totals as (
      select late, product, model, api_key_id, project, day, sum(cost)::text as cost, count(*)::int as events
      from events group by late, product, model, api_key_id, project, day
    ),
    meters as (
      select late, product, model, api_key_id, project, day, q.key as meter, sum(q.value::numeric)::text as quantity
      from events, jsonb_each_text(quantities) q group by late, product, model, api_key_id, project, day, q.key
    )
    select t.late, t.product, t.model, t.api_key_id, t.project, t.day, t.cost, t.events,
      coalesce(jsonb_agg(jsonb_build_array(m.meter, m.quantity) order by m.meter) filter (where m.meter is not null), '[]') as quantities
    from totals t left join meters m
      on m.late = t.late and m.product = t.product and m.model = t.model
        and m.api_key_id is not distinct from t.api_key_id and m.project is not distinct from t.project
        and m.day is not distinct from t.day
    group by t.late, t.product, t.model, t.api_key_id, t.project, t.day, t.cost, t.events
    order by ${order === "day" ? sql`t.day, ` : sql``}t.late, t.product, t.model, t.api_key_id, t.project, t.day`;
}

/** One roll-up row as a group: sums as bigints. */
export function toUsageGroup(r: UsageGroupRow): UsageGroup {
  return {
    late: r.late,
    product: r.product,
    model: r.model,
    apiKeyId: r.api_key_id,
    project: r.project,
    day: r.day,
    cost: BigInt(r.cost),
    events: r.events,
    quantities: Object.fromEntries(r.quantities.map(([meter, quantity]) => [meter, BigInt(quantity)])),
  };
}

/** The roll-up (usageRollupQuery), run and read whole: groups in the order of late, product, model, key, project, day (nulls last). */
export async function rollUpUsage(
  sql: Sql | TransactionSql,
  events: postgres.PendingQuery<postgres.Row[]>,
  split: RollUpSplit = {},
): Promise<UsageGroup[]> {
  return (await usageRollupQuery(sql, events, split)).map(toUsageGroup);
}
