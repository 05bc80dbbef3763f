import type { Sql } from "../db/client.js";

export type LedgerCheck = {
  unbalancedTransactions: { transactionId: string; sum: bigint }[];
  balanceMismatches: { accountId: string; cached: bigint; fromEntries: bigint }[];
};

/** Recomputes every cached balance from entries and re-adds every transaction: both lists are empty on a healthy ledger. */
export async function checkLedger(sql: Sql): Promise<LedgerCheck> {
  const unbalanced = await sql<{ transaction_id: string; sum: string }[]>`
    select transaction_id, sum(amount)::text as sum from ledger_entries group by transaction_id having sum(amount) <> 0`;
  const mismatches = await sql<{ id: string; cached: bigint; from_entries: string }[]>`
    select a.id, a.balance as cached, coalesce(sum(e.amount), 0)::text as from_entries
    from ledger_accounts a left join ledger_entries e on e.account_id = a.id
    where a.kind <> 'system'
    group by a.id, a.balance
    having a.balance <> coalesce(sum(e.amount), 0)`;
  return {
    unbalancedTransactions: unbalanced.map((r) => ({ transactionId: r.transaction_id, sum: BigInt(r.sum) })),
    balanceMismatches: mismatches.map((r) => ({ accountId: r.id, cached: BigInt(r.cached), fromEntries: BigInt(r.from_entries) })),
  };
}
