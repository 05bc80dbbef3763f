import { pino, type Logger } from "pino";
import { systemClock, type Clock } from "../clock.js";
import type { Sql, TransactionSql } from "../db/client.js";
import type { Queues } from "../jobs/queues.js";
import { Catalog } from "./catalog.js";

/**
 * What every service verb runs with: `verb(ctx, input)`. A transaction is a context whose `sql`
 * is the transaction, so verbs compose: one called with a transaction joins it (withTransaction).
 * Verbs read the time from `clock` once, at their start.
 */
export type BillingContext = {
  sql: Sql | TransactionSql;
  clock: Clock;
  catalog: Catalog;
  logger: Logger;
  /** Present in processes that enqueue jobs (the API, the workers); verbs that need it say so. */
  queues?: Queues;
};

/** A context inside a transaction: what a verb that must join its caller's transaction takes. */
export type TransactionContext = Omit<BillingContext, "sql"> & { sql: TransactionSql };

/**
 * Builds a context; what is not given gets the process defaults: the system clock, a catalog read
 * from `sql`, and a silent logger (tests and scripts that log nothing).
 */
export function createBillingContext(parts: {
  sql: Sql;
  clock?: Clock;
  catalog?: Catalog;
  logger?: Logger;
  queues?: Queues;
}): BillingContext {
  return {
    sql: parts.sql,
    clock: parts.clock ?? systemClock,
    catalog: parts.catalog ?? new Catalog(parts.sql),
    logger: parts.logger ?? pino({ level: "silent" }),
    ...(parts.queues ? { queues: parts.queues } : {}),
  };
}

/** The same context with its clock stopped at `now`: how a caller decides the time of a verb. */
export function at<C extends BillingContext>(ctx: C, now: Date): C {
  return { ...ctx, clock: () => now };
}

/** Runs `fn` in the context's transaction when it is one, else in a new one whose context it gets. */
export async function withTransaction<T>(ctx: BillingContext, fn: (tx: TransactionContext) => Promise<T>): Promise<T> {
  if (isTransaction(ctx.sql)) return fn({ ...ctx, sql: ctx.sql });
  const sql = ctx.sql as Sql;
  return (await sql.begin((tx) => fn({ ...ctx, sql: tx as TransactionSql }))) as T;
}

/** True when the context is inside a transaction (postgres.js gives transactions `savepoint`, clients `begin`). */
export function inTransaction(ctx: BillingContext): ctx is TransactionContext {
  return isTransaction(ctx.sql);
}

function isTransaction(sql: Sql | TransactionSql): sql is TransactionSql {
  return typeof (sql as TransactionSql).savepoint === "function" && typeof (sql as Sql).begin !== "function";
}
