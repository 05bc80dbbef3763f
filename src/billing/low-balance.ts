import type { TransactionSql } from "../db/client.js";
import { newId } from "../ids.js";
import { lowBalanceCrossed } from "./money-rules.js";
import { lockOrgs, type LockedOrg } from "./org-locks.js";

/** Writes the alert for a debit, if it crossed the threshold. */
export type LowBalanceCheck = (debitTransactionId: string | null) => Promise<void>;

/**
 * Low-balance alerts for the debits outside the metering hot path: card refunds and disputes,
 * HUSD reversals, invoice settlement, grant expiry (metering_batch watches usage itself). A
 * crossing is a fact of the transaction that debits: call this before the debit, in its
 * transaction, and the returned check after it. It locks the organization (its credits account,
 * as every money decision does), notes the balance, and the check reads it again and writes one
 * `balance_alerts` row if it went from at or above the threshold to below it. Its commit notifies
 * the workers, which enqueue the delivery (balance_alerts_notify, src/db/functions/ledger.sql).
 *
 * The balance judged is the ledger's (credits + held as posted), as metering_batch judges it
 * (src/db/functions/metering.sql): it changes only by transactions, each under this lock, so every crossing
 * belongs to exactly one transaction. A drop caused by a grant's expiry is told when the
 * expiry is posted, seconds after the balance the org is shown stopped counting the grant.
 *
 * The same check notes a crossing of the org's auto top-up threshold (auto_topup_note_crossing),
 * which a worker turns into at most one card charge (src/billing/auto-topup/).
 *
 * `locked`: the organization as the caller already locked and read it in this transaction.
 */
export async function watchLowBalance(
  tx: TransactionSql,
  orgId: string,
  now: Date,
  locked?: LockedOrg,
): Promise<LowBalanceCheck> {
  const read = async () => (await lockOrgs(tx, [orgId], now)).get(orgId);
  const before = locked ?? (await read());
  if (!before) return async () => {};
  const beforeBalance = before.credits + before.held;
  return async (debitTransactionId) => {
    if (!debitTransactionId) return;
    const after = await read();
    if (!after) throw new Error(`low-balance check: organization ${orgId} is no longer lockable`);
    const balance = after.credits + after.held;
    // The same crossing against the auto top-up threshold, if the org has one on (auto_topup.sql).
    if (balance < beforeBalance)
      await tx`select auto_topup_note_crossing(${orgId}, ${beforeBalance.toString()}, ${balance.toString()}, ${debitTransactionId}, ${now})`;
    if (!lowBalanceCrossed(beforeBalance, balance, after.threshold)) return;
    await tx`insert into balance_alerts (id, org_id, balance, threshold, transaction_id, created_at)
             values (${newId("alert")}, ${orgId}, ${balance.toString()}, ${after.threshold.toString()}, ${debitTransactionId}, ${now})`;
  };
}
