import type { TransactionSql } from "../../db/client.js";
import type { Period } from "../periods.js";

/** The invoice before a period: where its period ended and the newest usage seq it counted. */
export type PreviousInvoice = { end: Date; cutoff: bigint };

export async function previousInvoice(tx: TransactionSql, orgId: string, period: Period): Promise<PreviousInvoice> {
  const [row] = await tx<{ period_end: Date; usage_seq_cutoff: bigint }[]>`
    select period_end, usage_seq_cutoff from invoices where org_id = ${orgId} and period_start < ${period.start}
    order by period_start desc limit 1`;
  return { end: row?.period_end ?? new Date(0), cutoff: row?.usage_seq_cutoff ?? 0n };
}

export type UsageTotal = {
  late: boolean;
  product: string;
  model: string;
  cost: bigint;
  quantities: Record<string, bigint>;
};

/**
 * Usage of the period not invoiced before, per product and model, among the org's events with
 * afterSeq < seq <= upto, where upto is the newest seq of the org this statement sees. Not
 * invoiced before = not (occurred before the previous invoice's period end and written before
 * its close); usage that occurred before this period is late.
 *
 * Read without the org's lock, this still sees every event up to `upto`: usage is written under
 * the org's lock (metering_batch) and commits before releasing it, so a write still in flight
 * took the lock after every write this statement sees and has larger seqs. The close then reads
 * the events after `upto` under the lock, where none can be in flight.
 */
export async function usageTotals(
  tx: TransactionSql,
  orgId: string,
  period: Period,
  previous: PreviousInvoice,
  afterSeq: bigint,
): Promise<{ totals: UsageTotal[]; upto: bigint }> {
  const rows = await tx<
    {
      upto: bigint;
      late: boolean | null;
      product: string;
      model: string;
      cost: string;
      quantities: Record<string, string> | null;
    }[]
  >`
    with bound as (select coalesce(max(seq), 0) as upto from usage_events where org_id = ${orgId}),
    events as (
      select product, model, quantities, cost, occurred_at < ${period.start} as late
      from usage_events
      where org_id = ${orgId} and seq > ${afterSeq.toString()} and seq <= (select upto from bound) and occurred_at < ${period.end}
        and not (occurred_at < ${previous.end} and seq <= ${previous.cutoff.toString()})
    ),
    meters as (
      select late, product, model, jsonb_object_agg(key, total) as quantities from (
        select late, product, model, q.key, sum(q.value::numeric)::text as total
        from events, jsonb_each_text(quantities) q group by late, product, model, q.key
      ) m group by late, product, model
    ),
    totals as (
      select e.late, e.product, e.model, sum(e.cost)::text as cost, m.quantities
      from events e left join meters m using (late, product, model)
      group by e.late, e.product, e.model, m.quantities
    )
    select b.upto, t.* from bound b left join totals t on true`;
  const totals: UsageTotal[] = [];
  for (const r of rows) {
    if (r.late === null) continue; // the bound's row when the org has no such events
    totals.push({
      late: r.late,
      product: r.product,
      model: r.model,
      cost: BigInt(r.cost),
      quantities: Object.fromEntries(Object.entries(r.quantities ?? {}).map(([k, v]) => [k, BigInt(v)])),
    });
  }
  return { totals: sortUsageTotals(totals), upto: rows[0]?.upto ?? 0n };
}

/** Line order: this period's usage, then late usage; each by product, then model. */
function sortUsageTotals(totals: UsageTotal[]): UsageTotal[] {
  const cmp = (x: string, y: string) => (x < y ? -1 : x > y ? 1 : 0);
  return totals.sort((x, y) => Number(x.late) - Number(y.late) || cmp(x.product, y.product) || cmp(x.model, y.model));
}

export function addUsageTotals(a: UsageTotal[], b: UsageTotal[]): UsageTotal[] {
  const merged = new Map<string, UsageTotal>();
  for (const u of [...a, ...b]) {
    const k = JSON.stringify([u.late, u.product, u.model]);
    const seen = merged.get(k);
    if (!seen) {
      merged.set(k, { ...u, quantities: { ...u.quantities } });
      continue;
    }
    seen.cost += u.cost;
    for (const [meter, q] of Object.entries(u.quantities)) seen.quantities[meter] = (seen.quantities[meter] ?? 0n) + q;
  }
  return sortUsageTotals([...merged.values()]);
}
