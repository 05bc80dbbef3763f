import type { BillingContext, TransactionContext } from "../../src/billing/context.js";
import type { TransactionSql } from "../../src/db/client.js";
import { testContext } from "./context.js";
import type { TestDatabase } from "./database.js";

/** Thrown to end the transaction; caught only here, so any other error reaches the test. */
const ROLLBACK = Symbol("rollback");

/**
 * Runs `fn` with a verbs' context (as the app's login) whose sql is one transaction, rolled back
 * afterwards whatever `fn` does: nothing it writes outlives it. Verbs that open their own
 * transaction join this one (withTransaction), so their writes roll back too. `opts` adjusts the
 * context (e.g. its clock); returns what `fn` returned.
 */
export async function inRollback<T>(
  db: TestDatabase,
  fn: (ctx: TransactionContext) => Promise<T>,
  opts: { base?: BillingContext } = {},
): Promise<T> {
  const base = opts.base ?? testContext(db.appSql);
  let result: T | undefined;
  let ran = false;
  try {
    await db.appSql.begin(async (tx) => {
      result = await fn({ ...base, sql: tx as TransactionSql });
      ran = true;
      throw ROLLBACK;
    });
  } catch (err) {
    if (err !== ROLLBACK) throw err;
  }
  if (!ran) throw new Error("inRollback: the transaction ended without running fn to completion");
  return result as T;
}
