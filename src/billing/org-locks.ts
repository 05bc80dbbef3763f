import type { TransactionSql } from "../db/client.js";
import { orgCreditsAccount } from "../ledger/accounts.js";

export type LockedOrg = { credits: bigint; held: bigint; pendingExpiry: bigint; threshold: bigint; hasExpiringGrants: boolean };

/**
 * Locks the credits accounts of these organizations, always in id order so that concurrent
 * batches (in this process or another replica) can never deadlock, and reads what a money
 * decision needs. The lock is the per-organization serialization point: while it is held no
 * one else can spend the same credits.
 */
export async function lockOrgs(tx: TransactionSql, orgIds: string[], now: Date): Promise<Map<string, LockedOrg>> {
  const sorted = [...new Set(orgIds)].sort();
  const accounts = sorted.map(orgCreditsAccount);
  const rows = await tx<{ org_id: string; credits: bigint; held: bigint; threshold: bigint; pending: string; expiring: boolean }[]>`
    with locked as (
      select org_id, balance from ledger_accounts where id = any(${accounts}) order by id for update
    )
    select l.org_id, l.balance as credits, h.balance as held, o.low_balance_threshold as threshold,
      coalesce((select sum(g.amount - g.consumed) from credit_grants g
                where g.org_id = l.org_id and g.expires_at <= ${now} and g.expired_at is null), 0)::text as pending,
      exists (select 1 from credit_grants g where g.org_id = l.org_id and g.expires_at is not null and g.expired_at is null) as expiring
    from locked l
    join ledger_accounts h on h.org_id = l.org_id and h.kind = 'org_held'
    join organizations o on o.id = l.org_id`;
  return new Map(
    rows.map((r) => [r.org_id, { credits: r.credits, held: r.held, pendingExpiry: BigInt(r.pending), threshold: r.threshold, hasExpiringGrants: r.expiring }]),
  );
}

/** Spendable credits: the account less expired grants not yet posted (never below zero by expiry). */
export function spendable(org: LockedOrg): bigint {
  const positive = org.credits > 0n ? org.credits : 0n;
  return org.credits - (org.pendingExpiry < positive ? org.pendingExpiry : positive);
}
