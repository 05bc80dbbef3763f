import { loadConfig } from "../src/config.js";
import { createSql } from "../src/db/client.js";
import { ensureDatabase } from "../src/db/ensure-database.js";
import { migrate } from "../src/db/migrate.js";

const config = loadConfig();
if (await ensureDatabase(config.DATABASE_URL))
  console.log(`created database ${new URL(config.DATABASE_URL).pathname.slice(1)}`);
const sql = createSql(config.DATABASE_URL, { max: 1, applicationName: "hanzo-migrate" });
try {
  const applied = await migrate(sql, { log: (m) => console.log(m) });
  console.log(applied.length === 0 ? "database is up to date" : `applied ${applied.length} migration(s)`);
} finally {
  await sql.end();
}
