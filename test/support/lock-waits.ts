import type { Sql, TransactionSql } from "../../src/db/client.js";

/**
 * How many backends of this database wait for an advisory lock (a test that orders deliveries by
 * holding one; other test files' databases share the server).
 */
export async function advisoryWaiters(sql: Sql): Promise<number> {
  const [row] = await sql<{ n: number }[]>`
    select count(*)::int as n from pg_locks where locktype = 'advisory' and not granted
      and database = (select oid from pg_database where datname = current_database())`;
  return row?.n ?? 0;
}

/** Polls `cond` until it holds (up to ~4 s), else fails naming what it waited for. */
export async function waitFor(cond: () => Promise<boolean>, what: string): Promise<void> {
  for (let i = 0; i < 400; i++) {
    if (await cond()) return;
    await new Promise((r) => setTimeout(r, 10));
  }
  throw new Error(`timed out waiting for ${what}`);
}

/**
 * Takes locks in a transaction of its own (`take`) and holds them until `release()`, which ends
 * that transaction: a test orders a race by making one side wait behind them. Resolves once the
 * locks are taken.
 */
export async function holdLocks(
  sql: Sql,
  take: (tx: TransactionSql) => Promise<unknown>,
): Promise<{ release: () => Promise<void> }> {
  let letGo!: () => void;
  const released = new Promise<void>((r) => {
    letGo = r;
  });
  let taken!: () => void;
  const isTaken = new Promise<void>((r) => {
    taken = r;
  });
  const holder = sql.begin(async (tx) => {
    await take(tx);
    taken();
    await released;
  });
  await Promise.race([isTaken, holder]);
  return {
    release: async () => {
      letGo();
      await holder;
    },
  };
}
