import type { Sql } from "../../src/db/client.js";

/**
 * The state in which a session's plans were seen to misuse the partial indexes over active holds
 * (test/metering/hold-*-plan.test.ts): 100,000 closed holds of `orgId`, then a vacuum and an
 * analyze, so those indexes are empty (and the primary key deep) when the session plans its
 * statements. The holds are written directly, active then expired, as a gateway's history would
 * leave them: each went through the active indexes.
 */
export async function vacuumedAfterClosedHolds(sql: Sql, orgId: string, at: Date): Promise<void> {
  await sql`
    insert into holds (id, org_id, amount, status, product, model, estimate, catalog_version, expires_at, created_at, closed_at)
    select 'hold_past_' || n, ${orgId}, 0, 'active', 'llm', 'zen-pro', '{}', 'v', ${at}, ${at}, null
    from generate_series(1, 100000) n`;
  await sql`update holds set status = 'expired', closed_at = ${at} where id like 'hold_past_%'`;
  await sql`vacuum analyze holds`;
}

export type IndexReads = { index: string; blocks: number; tuples: number }[];

/**
 * Runs `work` in a transaction of `session` and returns, per index of holds, the blocks it fetched
 * and the index tuples it returned. Counted as the difference of the transaction's counts before
 * and after: the counts a session has not reported yet carry its earlier statements too.
 */
export async function holdsIndexReads<T>(
  session: Sql,
  work: () => Promise<T>,
): Promise<{ value: T; read: IndexReads }> {
  const counts = () => session<IndexReads>`
    select c.relname as index, pg_stat_get_xact_blocks_fetched(c.oid)::int as blocks,
           pg_stat_get_xact_tuples_returned(c.oid)::int as tuples
    from pg_index i join pg_class c on c.oid = i.indexrelid
    where i.indrelid = 'holds'::regclass order by 1`;
  await session`begin`;
  try {
    const before = await counts();
    const value = await work();
    const after = await counts();
    const read = after.map((a) => {
      const b = before.find((x) => x.index === a.index);
      return { index: a.index, blocks: a.blocks - (b?.blocks ?? 0), tuples: a.tuples - (b?.tuples ?? 0) };
    });
    return { value, read };
  } finally {
    await session`commit`;
  }
}
