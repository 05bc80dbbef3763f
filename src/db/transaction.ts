import type { Sql, TransactionSql } from "./client.js";

/** Runs `fn` in the caller's transaction when given one, else in a new one: service verbs compose. */
export async function withTransaction<T>(
  sql: Sql | TransactionSql,
  fn: (tx: TransactionSql) => Promise<T>,
): Promise<T> {
  if (isTransaction(sql)) return fn(sql);
  return (await (sql as Sql).begin((tx) => fn(tx as TransactionSql))) as T;
}

function isTransaction(sql: Sql | TransactionSql): sql is TransactionSql {
  // postgres.js gives transactions `savepoint` and plain clients `begin`.
  return typeof (sql as TransactionSql).savepoint === "function" && typeof (sql as Sql).begin !== "function";
}
