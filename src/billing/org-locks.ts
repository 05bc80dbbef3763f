import type { TransactionSql } from "../db/client.js";
import { orgCreditsAccount } from "../ledger/accounts.js";

/**
 * `pendingExpiry`: what grants that have expired, but whose expiry is not posted yet, take from
 * the credits now (grant_expiry_taken in src/db/functions/money_rules.sql, the one rule).
 * `held`: what live holds reserve; a hold past its expiry counts as given back even while it is
 * still marked active (the sweeper has not reached it), so `credits` never depends on the sweeper.
 */
export type LockedOrg = {
  credits: bigint;
  held: bigint;
  pendingExpiry: bigint;
  threshold: bigint;
  hasExpiringGrants: boolean;
};

/**
 * Locks the credits accounts of these organizations, always in id order so that concurrent
 * batches (in this process or another replica) can never deadlock, and reads what a money
 * decision needs. The lock is the per-organization serialization point: while it is held no
 * one else can spend the same credits. The metering hot path takes the same locks in the same
 * order inside PostgreSQL (metering_lock_orgs, src/db/functions/metering.sql).
 *
 * Every per-organization read is a scalar subquery, i.e. a primary-key or index probe per
 * locked row: joins here let the planner pick hash joins over whole tables when statistics are
 * stale (autovacuum off, tables grown since the last analyze).
 *
 * The lock and the reads are two statements: under READ COMMITTED one statement that waited for
 * the lock sees the account's new row but the holds and grants of its own, older snapshot, so a
 * hold that the transaction it waited for expired was given back twice (off `held` already, and
 * still counted as lapsed). The second statement's snapshot is taken once the lock is held.
 */
export async function lockOrgs(tx: TransactionSql, orgIds: string[], now: Date): Promise<Map<string, LockedOrg>> {
  const sorted = [...new Set(orgIds)].sort();
  const accounts = sorted.map(orgCreditsAccount);
  await tx`select 1 from ledger_accounts where id = any(${accounts}) order by id for update`;
  const rows = await tx<
    { org_id: string; credits: bigint; held: bigint; threshold: bigint; pending: string; expiring: boolean }[]
  >`
    with locked as materialized (
      select org_id, balance, held from ledger_accounts where id = any(${accounts})
    )
    select l.org_id, l.balance - (l.held - l.lapsed) as credits, l.held - l.lapsed as held,
      (select o.low_balance_threshold from organizations o where o.id = l.org_id) as threshold,
      grant_expiry_taken(l.org_id, ${now})::text as pending,
      exists (select 1 from credit_grants g where g.org_id = l.org_id and g.expires_at is not null and g.expired_at is null) as expiring
    from (
      -- What holds past their expiry still reserve until the sweeper or a metering batch expires
      -- them: not live (hold_live_at), so given back already, whenever the workers run.
      select locked.*, (select coalesce(sum(h.amount), 0)::bigint from holds h
                        where h.org_id = locked.org_id and h.status = 'active' and h.expires_at <= ${now}) as lapsed
      from locked
    ) l`;
  return new Map(
    rows.map((r) => [
      r.org_id,
      {
        credits: r.credits,
        held: r.held,
        pendingExpiry: BigInt(r.pending),
        threshold: r.threshold,
        hasExpiringGrants: r.expiring,
      },
    ]),
  );
}
