import { loadCatalog, readCatalogFile } from "../src/billing/catalog.js";
import { loadConfig } from "../src/config.js";
import { createSql } from "../src/db/client.js";

// Loads catalog/pricing.json (or the file given) into PostgreSQL. Safe to re-run: versions
// already loaded are checked for changes, never rewritten.
const config = loadConfig();
const sql = createSql(config.DATABASE_URL, { max: 1, applicationName: "hanzo-catalog" });
try {
  const result = await loadCatalog(sql, await readCatalogFile(process.argv[2]));
  console.log(`catalog: loaded ${result.loaded.join(", ") || "nothing new"}; unchanged ${result.unchanged.join(", ") || "none"}`);
} finally {
  await sql.end();
}
