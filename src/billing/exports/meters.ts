import type { Sql, TransactionSql } from "../../db/client.js";

/**
 * Every meter the catalog has ever priced, in name order: the quantity columns of the usage and
 * invoice exports. The catalog refuses a quantity of any other meter, so every event's and
 * line's meters are among them, and the columns are known before the first row is read.
 */
export async function catalogMeters(sql: Sql | TransactionSql): Promise<string[]> {
  const rows = await sql<{ meter: string }[]>`select distinct meter from catalog_rates order by meter`;
  return rows.map((r) => r.meter);
}
