import type { BillingContext } from "../context.js";
import { type LedgerTransactionView, toTransactionView, transactionsQuery } from "../transactions.js";
import type { ExportPeriod } from "./export-period.js";
import { cursorBatches } from "./cursor-batches.js";

/**
 * The org's ledger transactions created in [start, end), in the order they committed (oldest first), each as
 * GET /v1/billing/transactions shows it (transactionsQuery), in batches through a cursor.
 */
export async function* transactionsForExport(
  ctx: BillingContext,
  input: { orgId: string; period: ExportPeriod },
): AsyncGenerator<LedgerTransactionView[]> {
  const query = transactionsQuery(ctx.sql, { orgId: input.orgId, order: "oldest", createdIn: input.period });
  yield* cursorBatches(query, toTransactionView);
}
