import type { TransactionSql } from "../db/client.js";
import { newId } from "../ids.js";
import { lockOrgs, spendable } from "./org-locks.js";

/** Writes the alert for a debit, if it crossed the threshold; returns the alert's id. */
export type LowBalanceCheck = (debitTransactionId: string | null) => Promise<string | null>;

/**
 * Low-balance alerts for the debits outside the metering hot path: card refunds and disputes,
 * HUSD reversals, invoice settlement, grant expiry (metering_batch watches usage itself,
 * migration 0010). A crossing is a fact of the transaction that debits: call this before the
 * debit, in its transaction, and the returned check after it. It locks the organization (its
 * credits account, as every money decision does), notes the balance, and the check reads it
 * again and writes one `balance_alerts` row if it went from at or above the threshold to below
 * it. The worker's sweep of undelivered alerts enqueues its job.
 *
 * The balance is what GET /v1/billing/balance shows: credits less grants that expired but whose
 * expiry is not posted yet, plus held. Posting an expiry does not change that figure (the grant
 * stopped counting when it expired), so the expiry posting watches the ledger's own balance
 * (`ledger: true`, credits + held as posted): that is when the org is told of the drop its
 * expiry caused, once, whether or not usage saw the lower balance in between.
 */
export async function watchLowBalance(tx: TransactionSql, orgId: string, now: Date, opts: { ledger?: boolean } = {}): Promise<LowBalanceCheck> {
  const read = async () => {
    const org = (await lockOrgs(tx, [orgId], now)).get(orgId);
    return org && { balance: (opts.ledger ? org.credits : spendable(org)) + org.held, threshold: org.threshold };
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
