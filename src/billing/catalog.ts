import { readFile } from "node:fs/promises";
import { z } from "zod";
import type { Sql } from "../db/client.js";
import { BillingError } from "../errors.js";
import { fingerprint } from "../ledger/post-transaction.js";
import { divideHalfEven, NANO_PER_USD, parseDecimal, parseUsd } from "../ledger/money.js";

const Rate = z.string().regex(/^\d+(\.\d{1,18})?$/, "a rate is a non-negative decimal string");
const Meter = z.string().regex(/^[a-z][a-z0-9_]{0,40}$/);

const ProductFile = z.object({
  name: z.string(),
  unit: z.string(),
  meters: z.array(Meter).min(1),
  models: z.record(z.string().regex(/^[a-z0-9][a-z0-9._-]{0,80}$/), z.record(Meter, Rate)).optional(),
  rates: z.record(Meter, Rate).optional(),
});
const VersionFile = z.object({
  version: z.string().min(1).max(40),
  effective_at: z.iso.datetime({ offset: true }),
  products: z.record(z.string().regex(/^[a-z][a-z0-9_]{0,40}$/), ProductFile),
  plans: z.array(z.object({ id: z.string(), name: z.string(), monthly_price: z.string(), included_credits: z.string() })),
});
export const CatalogFile = z.object({ versions: z.array(VersionFile).min(1) });
export type CatalogFile = z.infer<typeof CatalogFile>;
export type CatalogVersionFile = z.infer<typeof VersionFile>;

export const DEFAULT_CATALOG_PATH = new URL("../../catalog/pricing.json", import.meta.url);

export async function readCatalogFile(path: string | URL = DEFAULT_CATALOG_PATH): Promise<CatalogFile> {
  return CatalogFile.parse(JSON.parse(await readFile(path, "utf8")));
}

/**
 * Loads every version of the file into PostgreSQL. A version already loaded must be identical:
 * prices that applied to past usage never change; publish a new version instead.
 */
export async function loadCatalog(sql: Sql, file: CatalogFile): Promise<{ loaded: string[]; unchanged: string[] }> {
  const loaded: string[] = [];
  const unchanged: string[] = [];
  for (const v of file.versions) {
    const checksum = fingerprint(v);
    await sql.begin(async (tx) => {
      const [existing] = await tx<{ checksum: string }[]>`select checksum from catalog_versions where version = ${v.version}`;
      if (existing) {
        if (existing.checksum !== checksum) throw new Error(`catalog version ${v.version} is already loaded with different contents; publish a new version instead`);
        unchanged.push(v.version);
        return;
      }
      await tx`insert into catalog_versions (version, effective_at, checksum, document)
               values (${v.version}, ${v.effective_at}, ${checksum}, ${tx.json(v as never)})`;
      const rates: { version: string; product: string; model: string; meter: string; rate: string }[] = [];
      for (const [product, p] of Object.entries(v.products)) {
        const perModel = p.models ? Object.entries(p.models) : [["", p.rates ?? {}] as const];
        for (const [model, meters] of perModel) {
          for (const meter of p.meters) {
            const rate = meters[meter];
            if (rate === undefined) throw new Error(`catalog ${v.version}: ${product}/${model || "-"} has no rate for ${meter}`);
            rates.push({ version: v.version, product, model, meter, rate });
          }
        }
      }
      await tx`insert into catalog_rates ${tx(rates, "version", "product", "model", "meter", "rate")}`;
      if (v.plans.length > 0) {
        const plans = v.plans.map((p) => ({
          version: v.version,
          plan_id: p.id,
          name: p.name,
          monthly_price: parseUsd(p.monthly_price).toString(),
          included_credits: parseUsd(p.included_credits).toString(),
        }));
        await tx`insert into catalog_plans ${tx(plans, "version", "plan_id", "name", "monthly_price", "included_credits")}`;
      }
      loaded.push(v.version);
    });
  }
  return { loaded, unchanged };
}

export type Price = { version: string; cost: bigint };
/** A meter's rate, also as an exact decimal (parsed once, when the version is loaded). */
type MeterRate = { rate: string; units: bigint; scale: number };
type VersionIndex = { version: string; effectiveAt: Date; document: CatalogVersionFile; rates: Map<string, Map<string, MeterRate>> };

const POWERS_OF_TEN: bigint[] = Array.from({ length: 40 }, (_, i) => 10n ** BigInt(i));
const pow10 = (n: number) => POWERS_OF_TEN[n] ?? 10n ** BigInt(n);

/**
 * The loaded catalog in memory. Versions never change once loaded, so a process may keep them;
 * `refresh` only adds versions published since.
 */
export class Catalog {
  private versions: VersionIndex[] = []; // ascending effective_at

  constructor(private readonly sql: Sql) {}

  async refresh(): Promise<void> {
    const rows = await this.sql<{ version: string; effective_at: Date; document: CatalogVersionFile }[]>`
      select version, effective_at, document from catalog_versions order by effective_at`;
    if (rows.length === this.versions.length) return;
    const rates = await this.sql<{ version: string; product: string; model: string; meter: string; rate: string }[]>`
      select version, product, model, meter, rate::text from catalog_rates`;
    this.versions = rows.map((r) => {
      const map = new Map<string, Map<string, MeterRate>>();
      for (const rate of rates.filter((x) => x.version === r.version)) {
        const key = `${rate.product}/${rate.model}`;
        if (!map.has(key)) map.set(key, new Map());
        map.get(key)!.set(rate.meter, { rate: rate.rate, ...parseDecimal(rate.rate) });
      }
      return { version: r.version, effectiveAt: r.effective_at, document: r.document, rates: map };
    });
  }

  get isEmpty(): boolean {
    return this.versions.length === 0;
  }

  versionAt(at: Date): VersionIndex {
    let found: VersionIndex | undefined;
    for (const v of this.versions) if (v.effectiveAt <= at) found = v;
    if (!found) throw new BillingError("unknown_product", `no pricing catalog was in force at ${at.toISOString()}`);
    return found;
  }

  /** Every version, oldest first, for the public pricing endpoints. */
  allVersions(): readonly VersionIndex[] {
    return this.versions;
  }

  /**
   * Prices quantities of one product (and model) at the version in force at `at`. The exact
   * products of every meter are summed first and rounded once, half to even, to nano-USD.
   */
  price(at: Date, product: string, model: string | undefined, quantities: Record<string, bigint>): Price {
    const version = this.versionAt(at);
    const productDoc = version.document.products[product];
    if (!productDoc) throw new BillingError("unknown_product", `unknown product "${product}"; see GET /v1/pricing/models`, { details: { param: "product" } });
    if (productDoc.models && !model) throw new BillingError("unknown_model", `product "${product}" needs a model`, { details: { param: "model" } });
    if (!productDoc.models && model) throw new BillingError("unknown_model", `product "${product}" is not priced per model; omit model`, { details: { param: "model" } });
    const rates = version.rates.get(`${product}/${model ?? ""}`);
    if (!rates) throw new BillingError("unknown_model", `unknown model "${model}" for product "${product}"`, { details: { param: "model" } });
    // Sum quantity × rate exactly over a common power of ten, then round once.
    let scale = 0;
    for (const meter in quantities) {
      const rate = rates.get(meter);
      if (!rate) {
        throw new BillingError("invalid_request", `product "${product}" has no meter "${meter}"; meters: ${productDoc.meters.join(", ")}`, {
          details: { param: `quantities.${meter}` },
        });
      }
      if (rate.scale > scale) scale = rate.scale;
    }
    let exact = 0n; // USD × 10^scale
    for (const meter in quantities) {
      const rate = rates.get(meter)!;
      exact += quantities[meter]! * rate.units * pow10(scale - rate.scale);
    }
    const cost = divideHalfEven(exact * NANO_PER_USD, pow10(scale));
    return { version: version.version, cost };
  }
}
