import { readFileSync } from "node:fs";

/**
 * Exact prices for the model, read from the same catalog file every test database is loaded
 * with: each rate becomes integer nano-USD per unit (bigint), so a cost is a sum of integer
 * products and never needs rounding. A rate that is not a whole number of nano-USD is refused:
 * the model only uses meters it can price exactly.
 */
type CatalogFile = {
  versions: {
    version: string;
    effective_at: string;
    products: Record<string, { models?: Record<string, Record<string, string>>; rates?: Record<string, string> }>;
  }[];
};

const catalog = JSON.parse(readFileSync(new URL("../../catalog/pricing.json", import.meta.url), "utf8")) as CatalogFile;

export type Priced = { product: string; model?: string; quantities: Record<string, number> };

export function nanoPerUnit(rate: string): bigint {
  const [whole = "0", frac = ""] = rate.split(".");
  if (frac.length > 9 && /[^0]/.test(frac.slice(9)))
    throw new Error(`rate ${rate} is finer than a nano-USD: the model cannot price it exactly`);
  return BigInt(whole) * 1_000_000_000n + BigInt(frac.slice(0, 9).padEnd(9, "0"));
}

/** The cost in nano-USD of these quantities at the catalog version in force at `at`. */
export function priceNano(p: Priced, at: number): bigint {
  const version = catalog.versions.filter((v) => Date.parse(v.effective_at) <= at).at(-1);
  if (!version) throw new Error(`no catalog version in force at ${new Date(at).toISOString()}`);
  const product = version.products[p.product];
  const rates = p.model ? product?.models?.[p.model] : product?.rates;
  if (!rates) throw new Error(`the catalog has no ${p.product}/${p.model ?? "-"}`);
  let cost = 0n;
  for (const [meter, quantity] of Object.entries(p.quantities)) {
    const rate = rates[meter];
    if (rate === undefined) throw new Error(`${p.product}/${p.model ?? "-"} has no meter ${meter}`);
    cost += BigInt(quantity) * nanoPerUnit(rate);
  }
  return cost;
}
