import type { TransactionSql } from "../db/client.js";
import { newId } from "../ids.js";
import { lockOrgs } from "./org-locks.js";

/** Writes the alert for a debit, if it crossed the threshold; returns the alert's id. */
export type LowBalanceCheck = (debitTransactionId: string | null) => Promise<string | null>;

/**
 * Low-balance alerts for the debits outside the metering hot path: card refunds and disputes,
 * HUSD reversals, invoice settlement, grant expiry (metering_batch watches usage itself). A
 * crossing is a fact of the transaction that debits: call this before the debit, in its
 * transaction, and the returned check after it. It locks the organization (its credits account,
 * as every money decision does), notes the balance, and the check reads it again and writes one
 * `balance_alerts` row if it went from at or above the threshold to below it. Its commit notifies
 * the workers, which enqueue the delivery (migration 0013).
 *
 * The balance judged is the ledger's (credits + held as posted), as metering_batch judges it
 * (migration 0012): it changes only by transactions, each under this lock, so every crossing
 * belongs to exactly one transaction. A drop caused by a grant's expiry is told when the
 * expiry is posted, seconds after the balance the org is shown stopped counting the grant.
 */
export async function watchLowBalance(tx: TransactionSql, orgId: string, now: Date): Promise<LowBalanceCheck> {
  const read = async () => {
    const org = (await lockOrgs(tx, [orgId], now)).get(orgId);
    return org && { balance: org.credits + org.held, threshold: org.threshold };
  };
  const before = await read();
  if (!before) return async () => null;
  return async (debitTransactionId) => {
    if (!debitTransactionId) return null;
    const { balance, threshold } = (await read())!;
    if (!(before.balance >= threshold && balance < threshold)) return null;
    const id = newId("alert");
    await tx`insert into balance_alerts (id, org_id, balance, threshold, transaction_id, created_at)
             values (${id}, ${orgId}, ${balance.toString()}, ${threshold.toString()}, ${debitTransactionId}, ${now})`;
    return id;
  };
}
