import type { TransactionSql } from "../../db/client.js";
import type { Period } from "../periods.js";
import { rollUpUsage } from "../usage-rollup.js";

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
 * Usage of the period not invoiced before, per product and model (rollUpUsage), among the org's
 * events with afterSeq < seq <= upto, where upto is the newest seq of the org when this is called.
 * Not invoiced before = not (occurred before the previous invoice's period end and written before
 * its close); usage that occurred before this period is late.
 *
 * Read without the org's lock, this still sees every event up to `upto`: usage is written under
 * the org's lock (metering_batch) and commits before releasing it, so a write in flight when
 * `upto` was read took the lock after every write that read saw, and has a larger seq. The close
 * then reads the events after `upto` under the lock, where none can be in flight.
 */
export async function usageTotals(
  tx: TransactionSql,
  orgId: string,
  period: Period,
  previous: PreviousInvoice,
  afterSeq: bigint,
): Promise<{ totals: UsageTotal[]; upto: bigint }> {
  const [bound] = await tx<{ upto: bigint }[]>`
    select coalesce(max(seq), 0)::bigint as upto from usage_events where org_id = ${orgId}`;
  const upto = bound?.upto ?? 0n;
  // The events with afterSeq < seq <= upto that occurred before the period's end and were not
  // invoiced before, as two disjoint parts, each read by an index without the org's older
  // history (usage_events is partitioned by month; the history grows for years):
  //   - written after the previous close (seq > its cutoff), whenever they occurred: a probe of
  //     (org_id, seq) per partition before the period's end, finding only the new rows;
  //   - written before it but occurred since its period's end: (org_id, occurred_at) in the
  //     months from there to this period's end.
  const newer = afterSeq > previous.cutoff ? afterSeq : previous.cutoff;
  const groups = await rollUpUsage(
    tx,
    tx`
      select occurred_at < ${period.start} as late, product, model, quantities, cost
      from usage_events
      where org_id = ${orgId} and seq > ${newer.toString()} and seq <= ${upto.toString()} and occurred_at < ${period.end}
      union all
      select occurred_at < ${period.start} as late, product, model, quantities, cost
      from usage_events
      where org_id = ${orgId} and occurred_at >= ${previous.end} and occurred_at < ${period.end}
        and seq > ${afterSeq.toString()} and seq <= ${previous.cutoff.toString()} and seq <= ${upto.toString()}`,
  );
  const totals = groups.map(({ late, product, model, cost, quantities }) => ({
    late,
    product,
    model,
    cost,
    quantities,
  }));
  return { totals: sortUsageTotals(totals), upto };
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
