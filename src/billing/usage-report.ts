import type { BillingContext } from "./context.js";
import type { Period } from "./periods.js";

export type UsageLine = { quantities: Record<string, bigint>; cost: bigint; events: number };
export type UsageReport = {
  period: Period;
  total: bigint;
  products: (UsageLine & { product: string; models: (UsageLine & { model: string })[] })[];
};

/** Quantities and cost by product and model for events that occurred in the period. */
export async function usageReport(ctx: BillingContext, input: { orgId: string; period: Period }): Promise<UsageReport> {
  const { orgId, period } = input;
  const rows = await ctx.sql<
    { product: string; model: string; meter: string | null; quantity: string | null; cost: string; events: number }[]
  >`
    with events as (
      select product, model, quantities, cost from usage_events
      where org_id = ${orgId} and occurred_at >= ${period.start} and occurred_at < ${period.end}
    ),
    costs as (
      select product, model, sum(cost)::text as cost, count(*)::int as events from events group by product, model
    ),
    meters as (
      select product, model, q.key as meter, sum(q.value::numeric)::text as quantity
      from events, jsonb_each_text(quantities) q group by product, model, q.key
    )
    select c.product, c.model, m.meter, m.quantity, c.cost, c.events
    from costs c left join meters m using (product, model)
    order by c.product, c.model, m.meter`;
  const products = new Map<string, UsageReport["products"][number]>();
  const models = new Map<string, UsageReport["products"][number]["models"][number]>();
  for (const r of rows) {
    let product = products.get(r.product);
    if (!product) {
      product = { product: r.product, quantities: {}, cost: 0n, events: 0, models: [] };
      products.set(r.product, product);
    }
    const key = `${r.product}/${r.model}`;
    let model = models.get(key);
    if (!model) {
      model = { model: r.model, quantities: {}, cost: BigInt(r.cost), events: r.events };
      models.set(key, model);
      product.models.push(model);
      product.cost += model.cost;
      product.events += model.events;
    }
    if (r.meter !== null && r.quantity !== null) {
      const q = BigInt(r.quantity);
      model.quantities[r.meter] = q;
      product.quantities[r.meter] = (product.quantities[r.meter] ?? 0n) + q;
    }
  }
  const list = [...products.values()];
  return { period, total: list.reduce((s, p) => s + p.cost, 0n), products: list };
}
