import type { Sql } from "./client.js";

/** A month partition made by `ensurePartitions`, or one it left because its rows are in the default partition. */
export type PartitionMonth = { table: string; month: string };

/**
 * Makes the monthly partitions of usage_events and ledger_entries that are missing, from each
 * table's first month through `monthsAhead` months after the current one (partitions_ensure in
 * src/db/functions/partitions.sql; the `ensure-partitions` maintenance job calls it every hour).
 * Safe to run from any number of workers at once: they take turns and the later ones find
 * nothing to do. `inDefault` lists months it did not make because rows of theirs are already in
 * the default partition (the job had stopped for longer than `monthsAhead`, or an event is dated
 * far ahead): they stay there, read like any other, until an operator moves them (docs/scale.md).
 */
export async function ensurePartitions(
  sql: Sql,
  monthsAhead: number,
): Promise<{ created: PartitionMonth[]; inDefault: PartitionMonth[] }> {
  const rows = await sql<{ table_name: string; month: string; outcome: "created" | "in_default" }[]>`
    select table_name, to_char(month, 'YYYY-MM') as month, outcome from partitions_ensure(${monthsAhead})`;
  const pick = (outcome: string) =>
    rows.filter((r) => r.outcome === outcome).map((r) => ({ table: r.table_name, month: r.month }));
  return { created: pick("created"), inDefault: pick("in_default") };
}
