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

/**
 * The usage roll-up, the one the usage report and invoices both use: the events of `events` (a
 * query fragment selecting `late, product, model, quantities, cost` from usage_events, and the
 * columns `split` asks for; which events, and which count as late, is the caller's) summed per
 * lateness, product and model (and API key, project and day when split by them): cost, number
 * of events, and each meter's quantity, exactly (numeric sums). Groups come in the database's
 * order of late, product, model, key, project, day (nulls last).
 */
export async function rollUpUsage(
  sql: Sql | TransactionSql,
  events: postgres.PendingQuery<postgres.Row[]>,
  split: RollUpSplit = {},
): Promise<UsageGroup[]> {
  const rows = await sql<
    {
      late: boolean;
      product: string;
      model: string;
      api_key_id: string | null;
      project: string | null;
      day: string | null;
      cost: string;
      events: number;
      quantities: [string, string][];
    }[]
  >`
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
    order by t.late, t.product, t.model, t.api_key_id, t.project, t.day`;
  return rows.map((r) => ({
    late: r.late,
    product: r.product,
    model: r.model,
    apiKeyId: r.api_key_id,
    project: r.project,
    day: r.day,
    cost: BigInt(r.cost),
    events: r.events,
    quantities: Object.fromEntries(r.quantities.map(([meter, quantity]) => [meter, BigInt(quantity)])),
  }));
}
