import { fingerprint } from "../ledger/post-transaction.js";
import { parseUsd } from "../ledger/money.js";
import { CATALOG_CHANNEL, type CatalogFile } from "./catalog.js";
import { withTransaction, type BillingContext } from "./context.js";

/**
 * Loads every version of the file into PostgreSQL. A version already loaded must be identical:
 * prices that applied to past usage never change; publish a new version instead. Each new
 * version is announced to every replica at its commit (NOTIFY catalog_versions).
 *
 * `minNoticeMs` (the CLI passes CATALOG_NOTICE_MS) refuses a new version that takes effect
 * sooner than that after its load, unless the catalog was empty (nothing was priced yet). A
 * version loaded at shorter notice, or effective in the past (a backfill), reaches each replica
 * when it hears of it (at once by NOTIFY, within a second by its periodic check): events that
 * replica prices before then keep the version before, as do events recorded before the load.
 */
export async function loadCatalog(
  ctx: BillingContext,
  input: { file: CatalogFile; minNoticeMs?: number },
): Promise<{ loaded: string[]; unchanged: string[] }> {
  const { sql } = ctx;
  const { file } = input;
  const loaded: string[] = [];
  const unchanged: string[] = [];
  const [{ n: before } = { n: 0 }] = await sql<{ n: number }[]>`select count(*)::int as n from catalog_versions`;
  const minNoticeMs = before === 0 ? 0 : (input.minNoticeMs ?? 0);
  for (const v of file.versions) {
    const checksum = fingerprint(v);
    await withTransaction(ctx, async ({ sql: tx }) => {
      const [existing] = await tx<
        { checksum: string }[]
      >`select checksum from catalog_versions where version = ${v.version}`;
      if (existing) {
        if (existing.checksum !== checksum)
          throw new Error(
            `catalog version ${v.version} is already loaded with different contents; publish a new version instead`,
          );
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
            if (rate === undefined)
              throw new Error(`catalog ${v.version}: ${product}/${model || "-"} has no rate for ${meter}`);
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
      // Delivered at commit, never for a rolled-back load.
      await tx`select pg_notify(${CATALOG_CHANNEL}, ${v.version})`;
      if (minNoticeMs > 0) {
        // Last, so that nothing but the commit separates the check from the moment replicas can see the version.
        const [check] = await tx<{ enough: boolean; now: Date }[]>`
          select ${v.effective_at}::timestamptz >= clock_timestamp() + ${minNoticeMs}::int * interval '1 millisecond' as enough, clock_timestamp() as now`;
        if (!check) throw new Error("the notice check returned no row");
        if (!check.enough) {
          throw new Error(
            `catalog version ${v.version} takes effect at ${v.effective_at}, less than ${minNoticeMs / 1000} s after now (${check.now.toISOString()}): ` +
              `replicas could price usage after it with the version before; publish it with a later effective_at, or load it with --short-notice`,
          );
        }
      }
      loaded.push(v.version);
    });
  }
  return { loaded, unchanged };
}
