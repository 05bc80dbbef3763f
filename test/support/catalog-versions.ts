import { type CatalogVersionFile, readCatalogFile } from "../../src/billing/catalog.js";
import { loadCatalog } from "../../src/billing/load-catalog.js";
import type { Sql } from "../../src/db/client.js";
import { testContext } from "./context.js";

type PlanTerms = CatalogVersionFile["plans"][number];

/**
 * Loads catalog versions made from the stock catalog's newest: each takes effect at `effectiveAt`
 * (and is named by its date) with the plans `plans` makes of the stock ones. Loading the same
 * versions again is a no-op, so each test of a file may call it.
 */
export async function loadPlanVersions(
  sql: Sql,
  versions: { effectiveAt: string; plans: (stock: PlanTerms[]) => PlanTerms[] }[],
): Promise<void> {
  const base = (await readCatalogFile()).versions.at(-1);
  if (!base) throw new Error("the catalog file has no version");
  await loadCatalog(testContext(sql), {
    file: {
      versions: versions.map((v) => ({
        ...base,
        version: v.effectiveAt.slice(0, 10),
        effective_at: v.effectiveAt,
        plans: v.plans(base.plans),
      })),
    },
  });
}
