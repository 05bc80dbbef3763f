import type postgres from "postgres";
import type { Sql, TransactionSql } from "../db/client.js";

/** Usage summed for one product and model (and lateness: see rollUpUsage). */
export type UsageGroup = {
  late: boolean;
  product: string;
  model: string;
  cost: bigint;
  events: number;
  /** Each meter's summed quantity, meters in name order. */
  quantities: Record<string, bigint>;
};

/**
 * The usage roll-up, the one the usage report and invoices both use: the events of `events` (a
 * query fragment selecting `late, product, model, quantities, cost` from usage_events; which
 * events, and which count as late, is the caller's) summed per lateness, product and model:
 * cost, number of events, and each meter's quantity, exactly (numeric sums). Groups come in
 * the database's order of late, product, model.
 */
export async function rollUpUsage(
  sql: Sql | TransactionSql,
  events: postgres.PendingQuery<postgres.Row[]>,
): Promise<UsageGroup[]> {
  const rows = await sql<
    { late: boolean; product: string; model: string; cost: string; events: number; quantities: [string, string][] }[]
  >`
    with events as (${events}),
    totals as (
      select late, product, model, sum(cost)::text as cost, count(*)::int as events from events group by late, product, model
    ),
    meters as (
      select late, product, model, q.key as meter, sum(q.value::numeric)::text as quantity
      from events, jsonb_each_text(quantities) q group by late, product, model, q.key
    )
    select t.late, t.product, t.model, t.cost, t.events,
      coalesce(jsonb_agg(jsonb_build_array(m.meter, m.quantity) order by m.meter) filter (where m.meter is not null), '[]') as quantities
    from totals t left join meters m using (late, product, model)
    group by t.late, t.product, t.model, t.cost, t.events
    order by t.late, t.product, t.model`;
  return rows.map((r) => ({
    late: r.late,
    product: r.product,
    model: r.model,
    cost: BigInt(r.cost),
    events: r.events,
    quantities: Object.fromEntries(r.quantities.map(([meter, quantity]) => [meter, BigInt(quantity)])),
  }));
}
