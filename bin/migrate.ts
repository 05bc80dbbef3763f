import { loadConfig } from "../src/config.js";
import { createSql } from "../src/db/client.js";
import { ensureDatabase } from "../src/db/ensure-database.js";
import { migrate } from "../src/db/migrate.js";

// As the tables' owner (DATABASE_OWNER_URL), which also makes the roles the other processes
// log in as (migration 0021) and their rights (functions/grants.sql).
const config = loadConfig();
const url = config.DATABASE_OWNER_URL;
if (await ensureDatabase(url)) console.log(`created database ${new URL(url).pathname.slice(1)}`);
const sql = createSql(url, { max: 1, applicationName: "hanzo-migrate" });
try {
  const applied = await migrate(sql, { log: (m) => console.log(m) });
  console.log(applied.length === 0 ? "database is up to date" : `applied ${applied.length} migration(s)`);
} finally {
  await sql.end();
}
