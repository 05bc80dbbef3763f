import { CATALOG_NOTICE_MS, readCatalogFile } from "../src/billing/catalog.js";
import { createBillingContext } from "../src/billing/context.js";
import { loadCatalog } from "../src/billing/load-catalog.js";
import { loadConfig } from "../src/config.js";
import { createSql } from "../src/db/client.js";

// Loads catalog/pricing.json (or the file given) into PostgreSQL. Safe to re-run: versions
// already loaded are checked for changes, never rewritten. A new version must take effect at
// least a minute after its load, so every replica prices with it from its first instant (see
// Catalog in src/billing/catalog.ts); --short-notice loads it anyway (a backfill, a test).
// As the owner (DATABASE_OWNER_URL): the API and workers may read prices, never write them.
const config = loadConfig();
const args = process.argv.slice(2);
const shortNotice = args.includes("--short-notice");
const path = args.find((a) => !a.startsWith("--"));
const sql = createSql(config.DATABASE_OWNER_URL, { max: 1, applicationName: "hanzo-catalog" });
try {
  const result = await loadCatalog(createBillingContext({ sql }), {
    file: await readCatalogFile(path),
    minNoticeMs: shortNotice ? 0 : CATALOG_NOTICE_MS,
  });
  console.log(
    `catalog: loaded ${result.loaded.join(", ") || "nothing new"}; unchanged ${result.unchanged.join(", ") || "none"}`,
  );
} catch (err) {
  // Versions before the refused one stay loaded (each commits on its own); say which failed and why.
  console.error(`catalog: ${err instanceof Error ? err.message : String(err)}`);
  process.exitCode = 1;
} finally {
  await sql.end();
}
