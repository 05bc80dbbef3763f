import type { BillingContext } from "./context.js";
import type { Period } from "./periods.js";
import { rollUpUsage } from "./usage-rollup.js";

export type UsageLine = { quantities: Record<string, bigint>; cost: bigint; events: number };
export type UsageReport = {
  period: Period;
  total: bigint;
  products: (UsageLine & { product: string; models: (UsageLine & { model: string })[] })[];
};

/** Quantities and cost by product and model for events that occurred in the period (rollUpUsage). */
export async function usageReport(ctx: BillingContext, input: { orgId: string; period: Period }): Promise<UsageReport> {
  const { orgId, period } = input;
  const groups = await rollUpUsage(
    ctx.sql,
    ctx.sql`
      select false as late, product, model, quantities, cost from usage_events
      where org_id = ${orgId} and occurred_at >= ${period.start} and occurred_at < ${period.end}`,
  );
  const products = new Map<string, UsageReport["products"][number]>();
  for (const g of groups) {
    let product = products.get(g.product);
    if (!product) {
      product = { product: g.product, quantities: {}, cost: 0n, events: 0, models: [] };
      products.set(g.product, product);
    }
    product.models.push({ model: g.model, quantities: g.quantities, cost: g.cost, events: g.events });
    product.cost += g.cost;
    product.events += g.events;
    for (const [meter, q] of Object.entries(g.quantities))
      product.quantities[meter] = (product.quantities[meter] ?? 0n) + q;
  }
  const list = [...products.values()];
  return { period, total: list.reduce((s, p) => s + p.cost, 0n), products: list };
}
