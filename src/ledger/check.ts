import type { Sql } from "../db/client.js";

export type LedgerCheck = {
  unbalancedTransactions: { transactionId: string; sum: bigint }[];
  /** Organization accounts whose cached balance is not the sum of their entries (system accounts keep no cache). */
  balanceMismatches: { accountId: string; cached: bigint; fromEntries: bigint }[];
  /**
   * Organizations whose reserved amount (`held` on the credits account) is not the sum of their
   * active holds, or whose old held account (migration 0037) is not empty.
   */
  heldMismatches: { orgId: string; held: bigint; liveHolds: bigint }[];
};

/** How many things a check found wrong: 0 on a healthy ledger. */
export const mismatchCount = (check: LedgerCheck) =>
  check.unbalancedTransactions.length + check.balanceMismatches.length + check.heldMismatches.length;

/**
 * Recomputes what the triggers and the metering path promise; every list is empty on a healthy
 * ledger. One aggregate statement per kind of check, each reading one snapshot, so postings
 * committing meanwhile never show as a mismatch (a hold row and its ledger movement commit together).
 *
 * Cost: the first two statements each read every entry once, since no index helps a sum over
 * everything, so they grow with the ledger; the third reads only the active holds (partial index
 * holds_active_org) and the organizations' accounts. Nothing is locked; postings run on while it reads.
 * Hence a run every LEDGER_CHECK_INTERVAL_MS (10 minutes), not on every posting;
 * bench/RESULTS-ledger-check.md has the measured cost.
 */
export async function checkLedger(sql: Sql): Promise<LedgerCheck> {
  const unbalanced = await sql<{ transaction_id: string; sum: string }[]>`
    select transaction_id, sum(amount)::text as sum from ledger_entries group by transaction_id having sum(amount) <> 0`;
  // Entries are summed per account before the join: one group per account, not per entry.
  const mismatches = await sql<{ id: string; cached: bigint; from_entries: string }[]>`
    select a.id, a.balance as cached, coalesce(e.total, 0)::text as from_entries
    from ledger_accounts a
    left join (select account_id, sum(amount) as total from ledger_entries group by account_id) e on e.account_id = a.id
    where a.kind <> 'system' and a.balance <> coalesce(e.total, 0)`;
  // A full join: live holds of an org without a credits account are a mismatch too. An old held
  // account holding money shows as reserving that much more than the holds.
  const held = await sql<{ org_id: string; held: bigint; live_holds: string }[]>`
    select coalesce(a.org_id, h.org_id) as org_id, coalesce(a.held, 0) as held, coalesce(h.total, 0)::text as live_holds
    from (select org_id, sum(case when kind = 'org_credits' then held else balance end) as held
          from ledger_accounts where kind in ('org_credits', 'org_held') group by org_id) a
    full join (select org_id, sum(amount) as total from holds where status = 'active' group by org_id) h on h.org_id = a.org_id
    where coalesce(a.held, 0) <> coalesce(h.total, 0)`;
  return {
    unbalancedTransactions: unbalanced.map((r) => ({ transactionId: r.transaction_id, sum: BigInt(r.sum) })),
    balanceMismatches: mismatches.map((r) => ({
      accountId: r.id,
      cached: BigInt(r.cached),
      fromEntries: BigInt(r.from_entries),
    })),
    heldMismatches: held.map((r) => ({ orgId: r.org_id, held: BigInt(r.held), liveHolds: BigInt(r.live_holds) })),
  };
}
