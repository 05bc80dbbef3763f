import type { Sql, TransactionSql } from "../db/client.js";
import { withTransaction } from "../db/transaction.js";
import { BillingError } from "../errors.js";
import { newId } from "../ids.js";
import { orgCreditsAccount, SystemAccounts } from "../ledger/accounts.js";
import { fingerprint, postTransaction } from "../ledger/post-transaction.js";
import { watchLowBalance } from "./low-balance.js";

export type CreditGrant = {
  id: string;
  orgId: string;
  transactionId: string;
  amount: bigint;
  consumed: bigint;
  reason: string;
  expiresAt: Date | null;
  expiredAt: Date | null;
  expiredAmount: bigint | null;
  createdAt: Date;
};

type GrantRow = {
  id: string;
  org_id: string;
  transaction_id: string;
  amount: bigint;
  consumed: bigint;
  reason: string;
  expires_at: Date | null;
  expired_at: Date | null;
  expired_amount: bigint | null;
  created_at: Date;
};
const toGrant = (r: GrantRow): CreditGrant => ({
  id: r.id,
  orgId: r.org_id,
  transactionId: r.transaction_id,
  amount: r.amount,
  consumed: r.consumed,
  reason: r.reason,
  expiresAt: r.expires_at,
  expiredAt: r.expired_at,
  expiredAmount: r.expired_amount,
  createdAt: r.created_at,
});

export type GrantInput = { orgId: string; amount: bigint; reason: string; expiresAt?: Date | null; idempotencyKey: string };

/**
 * Grants credits to an organization, once per idempotency key (scoped to the organization).
 * Returns `created: false` with the original grant on a replay, including for the loser of a race.
 */
export async function grantCredits(sql: Sql | TransactionSql, input: GrantInput, now: Date): Promise<{ grant: CreditGrant; created: boolean }> {
  if (input.amount <= 0n) throw new BillingError("invalid_request", "amount must be greater than zero", { details: { param: "amount" } });
  if (input.expiresAt && input.expiresAt <= now) {
    throw new BillingError("invalid_request", "expires_at must be in the future", { details: { param: "expires_at" } });
  }
  return withTransaction(sql, async (tx) => {
    const [org] = await tx`select 1 from organizations where id = ${input.orgId}`;
    if (!org) throw new BillingError("not_found", `no organization ${input.orgId}`);
    const posted = await postTransaction(tx, {
      kind: "grant",
      orgId: input.orgId,
      idempotencyKey: `${input.orgId}:${input.idempotencyKey}`,
      fingerprint: fingerprint({ amount: input.amount, reason: input.reason, expiresAt: input.expiresAt?.toISOString() ?? null }),
      description: input.reason,
      entries: [
        { accountId: orgCreditsAccount(input.orgId), amount: input.amount },
        { accountId: SystemAccounts.grants, amount: -input.amount },
      ],
      createdAt: now,
    });
    if (!posted.created) {
      const [row] = await tx<GrantRow[]>`select * from credit_grants where transaction_id = ${posted.transactionId}`;
      return { grant: toGrant(row!), created: false };
    }
    const [row] = await tx<GrantRow[]>`
      insert into credit_grants (id, org_id, transaction_id, amount, reason, expires_at, created_at)
      values (${newId("grant")}, ${input.orgId}, ${posted.transactionId}, ${input.amount.toString()}, ${input.reason},
              ${input.expiresAt ?? null}, ${now})
      returning *`;
    return { grant: toGrant(row!), created: true };
  });
}

/**
 * Records that `amount` of spending was drawn from the org's expiring grants, soonest expiry
 * first, so that what expires later is only what was really left unused. Call it in the same
 * transaction as the debit. Returns the part that no expiring grant covered.
 */
export async function consumeExpiringGrants(tx: TransactionSql, orgId: string, amount: bigint, now: Date): Promise<bigint> {
  if (amount <= 0n) return 0n;
  const rows = await tx<{ id: string; free: bigint }[]>`
    select id, amount - consumed as free from credit_grants
    where org_id = ${orgId} and expires_at > ${now} and expired_at is null and consumed < amount
    order by expires_at, id for update`;
  let left = amount;
  for (const row of rows) {
    if (left === 0n) break;
    const take = row.free < left ? row.free : left;
    await tx`update credit_grants set consumed = consumed + ${take.toString()} where id = ${row.id}`;
    left -= take;
  }
  return left;
}

/** Sum of unused parts of grants that have expired but whose expiry is not yet posted. */
export async function pendingExpiry(sql: Sql | TransactionSql, orgId: string, now: Date): Promise<bigint> {
  const [row] = await sql<{ pending: string }[]>`
    select coalesce(sum(amount - consumed), 0)::text as pending from credit_grants
    where org_id = ${orgId} and expires_at <= ${now} and expired_at is null`;
  return BigInt(row!.pending);
}

/**
 * Posts the expiry of every grant past its expires_at: the unused part leaves the org's credits,
 * never taking them below zero. Idempotent per grant; the balance already excludes these amounts
 * from the moment they expire (see getBalance), so this only makes the ledger say so.
 */
export async function expireGrants(sql: Sql, now: Date, limit = 500): Promise<number> {
  const due = await sql<{ id: string; org_id: string }[]>`
    select id, org_id from credit_grants where expires_at <= ${now} and expired_at is null order by expires_at limit ${limit}`;
  let posted = 0;
  for (const { id, org_id } of due) {
    await sql.begin(async (tx) => {
      // Org account first, grant second: the same lock order as the usage path, so no deadlock.
      const [account] = await tx<{ balance: bigint; held: bigint }[]>`
        select c.balance, h.balance as held from ledger_accounts c join ledger_accounts h on h.org_id = c.org_id and h.kind = 'org_held'
        where c.id = ${orgCreditsAccount(org_id)} for update of c`;
      const [grant] = await tx<GrantRow[]>`select * from credit_grants where id = ${id} and expired_at is null for update`;
      if (!grant) return; // another worker got it first
      const unused = grant.amount - grant.consumed;
      // Grant money sitting in a live hold has not been spent yet: it expires too, so credits may
      // go below zero until the hold is settled or released and gives it back.
      const available = expirableAmount(account!.balance, account!.held);
      const take = unused < available ? unused : available;
      if (take > 0n) {
        const lowBalance = await watchLowBalance(tx, grant.org_id, now);
        const posted = await postTransaction(tx, {
          kind: "grant_expiry",
          orgId: grant.org_id,
          idempotencyKey: grant.id,
          description: `expiry of grant ${grant.id}`,
          metadata: { grant_id: grant.id },
          entries: [
            { accountId: orgCreditsAccount(grant.org_id), amount: -take },
            { accountId: SystemAccounts.grantExpiry, amount: take },
          ],
          createdAt: now,
        });
        await lowBalance(posted.created ? posted.transactionId : null);
      }
      await tx`update credit_grants set expired_at = ${now}, expired_amount = ${take.toString()} where id = ${id}`;
      posted++;
    });
  }
  return posted;
}

/** What an expiry may take back: never more than the org holds in credits and live holds together. */
export function expirableAmount(credits: bigint, held: bigint): bigint {
  const total = credits + held;
  return total > 0n ? total : 0n;
}
