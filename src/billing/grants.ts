import type { Sql, TransactionSql } from "../db/client.js";
import { BillingError } from "../errors.js";
import { newId } from "../ids.js";
import { orgCreditsAccount, SystemAccounts } from "../ledger/accounts.js";
import { findPosted, fingerprint, postTransfer, type TransactionKind } from "../ledger/post-transaction.js";
import { withTransaction, type BillingContext } from "./context.js";
import { grantsLeftAfterHolds } from "./money-rules.js";
import { watchLowBalance } from "./low-balance.js";

/** Where a grant came from (credit_grants.source), and the ledger kind its posting carries. */
export const GRANT_SOURCES = ["operator", "plan", "promo", "referral", "refund_credit"] as const;
export type GrantSource = (typeof GRANT_SOURCES)[number];
const LEDGER_KIND_OF_SOURCE = {
  operator: "grant",
  plan: "grant",
  promo: "promo_credit",
  referral: "referral_credit",
  refund_credit: "credit_note",
} as const satisfies Record<GrantSource, TransactionKind>;

export type CreditGrant = {
  id: string;
  orgId: string;
  transactionId: string;
  amount: bigint;
  consumed: bigint;
  reason: string;
  source: GrantSource;
  /** The row of the origin (promo redemption, referral, credit note); null for operator and plan grants. */
  sourceId: string | null;
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
  source: GrantSource;
  source_id: string | null;
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
  source: r.source,
  sourceId: r.source_id,
  expiresAt: r.expires_at,
  expiredAt: r.expired_at,
  expiredAmount: r.expired_amount,
  createdAt: r.created_at,
});

export type GrantInput = {
  orgId: string;
  amount: bigint;
  reason: string;
  expiresAt?: Date | null;
  idempotencyKey: string;
  /** Default "operator". */
  source?: GrantSource;
  sourceId?: string | null;
};

/**
 * Grants credits to an organization, once per idempotency key (scoped to the organization).
 * Returns `created: false` with the original grant on a replay, including for the loser of a race.
 */
export async function grantCredits(
  ctx: BillingContext,
  input: GrantInput,
): Promise<{ grant: CreditGrant; created: boolean }> {
  const now = ctx.clock();
  if (input.amount <= 0n)
    throw new BillingError("invalid_request", "amount must be greater than zero", { details: { param: "amount" } });
  const source = input.source ?? "operator";
  // Operator and plan grants share the ledger kind 'grant', and so its keys: an operator's key
  // shaped like a plan's would stand in for the plan's credits of that month (refused as reused,
  // which grantIncludedCredits reads as "already granted"), or replay them as the operator's.
  if (source === "operator" && input.idempotencyKey.startsWith(PLAN_CREDITS_KEY_PREFIX)) {
    throw new BillingError(
      "invalid_request",
      `Idempotency-Key may not start with ${PLAN_CREDITS_KEY_PREFIX} (kept for plans' included credits)`,
      {
        details: { param: "Idempotency-Key" },
      },
    );
  }
  const key = {
    kind: LEDGER_KIND_OF_SOURCE[source],
    orgId: input.orgId,
    idempotencyKey: grantLedgerKey(input),
    fingerprint: fingerprint({
      amount: input.amount,
      reason: input.reason,
      expiresAt: input.expiresAt?.toISOString() ?? null,
      // The source is in the ledger kind (part of the key); the fields of grants made before
      // sources existed stay as they were, so replays of those keep matching.
      ...(input.sourceId ? { sourceId: input.sourceId } : {}),
    }),
  };
  return withTransaction(ctx, async ({ sql: tx }) => {
    // A replay answers the first grant even once its expires_at has passed: the key first, the clock after.
    const replayed = await findPosted(tx, key);
    if (replayed) return { grant: await grantOf(tx, replayed), created: false };
    if (input.expiresAt && input.expiresAt <= now) {
      throw new BillingError("invalid_request", "expires_at must be in the future", {
        details: { param: "expires_at" },
      });
    }
    const [org] = await tx`select 1 from organizations where id = ${input.orgId}`;
    if (!org) throw new BillingError("not_found", `no organization ${input.orgId}`);
    const posted = await postTransfer(tx, {
      ...key,
      description: input.reason,
      from: SystemAccounts.grants,
      to: orgCreditsAccount(input.orgId),
      amount: input.amount,
      createdAt: now,
    });
    // The loser of a race with the same key waited on the unique index and replays the winner.
    if (!posted.created) return { grant: await grantOf(tx, posted.transactionId), created: false };
    const [row] = await tx<GrantRow[]>`
      insert into credit_grants (id, org_id, transaction_id, amount, reason, source, source_id, expires_at, created_at)
      values (${newId("grant")}, ${input.orgId}, ${posted.transactionId}, ${input.amount.toString()}, ${input.reason},
              ${source}, ${input.sourceId ?? null}, ${input.expiresAt ?? null}, ${now})
      returning *`;
    if (!row) throw new Error("insert into credit_grants returned no row");
    return { grant: toGrant(row), created: true };
  });
}

/** The grant grantCredits made with this idempotency key, found by its ledger transaction's unique key. */
export async function grantOfKey(
  ctx: BillingContext,
  input: { orgId: string; source: GrantSource; idempotencyKey: string },
): Promise<CreditGrant> {
  const [row] = await ctx.sql<GrantRow[]>`
    select g.* from credit_grants g join ledger_transactions t on t.id = g.transaction_id
    where t.kind = ${LEDGER_KIND_OF_SOURCE[input.source]} and t.idempotency_key = ${grantLedgerKey(input)}`;
  if (!row) throw new Error(`no ${input.source} credit grant with key ${input.idempotencyKey}`);
  return toGrant(row);
}

/** How the keys of plans' included credits start (grantIncludedCredits); no operator's key may. */
export const PLAN_CREDITS_KEY_PREFIX = "plan-credits:";

/** A grant's ledger idempotency key: the caller's, scoped to the organization. */
export const grantLedgerKey = (input: { orgId: string; idempotencyKey: string }) =>
  `${input.orgId}:${input.idempotencyKey}`;

async function grantOf(tx: TransactionSql, transactionId: string): Promise<CreditGrant> {
  const [row] = await tx<GrantRow[]>`select * from credit_grants where transaction_id = ${transactionId}`;
  if (!row) throw new Error(`no credit grant for ledger transaction ${transactionId}`);
  return toGrant(row);
}

/**
 * Records that `amount` of spending was drawn from the org's expiring grants, soonest expiry
 * first, so that what expires later is only what was really left unused (consume_expiring_grants,
 * src/db/functions/money_rules.sql). Call it in the same transaction as the debit, under the
 * org's lock. Returns the part that no expiring grant covered.
 */
export async function consumeExpiringGrants(
  tx: TransactionSql,
  orgId: string,
  amount: bigint,
  now: Date,
  opts: { planCreditsEndingAfter?: Date } = {},
): Promise<bigint> {
  if (amount <= 0n) return 0n;
  const [row] = await tx<
    { left: bigint }[]
  >`select consume_expiring_grants(${orgId}, ${amount.toString()}, ${now}, ${opts.planCreditsEndingAfter ?? null}) as left`;
  return row ? row.left : amount;
}

/**
 * Posts the expiry of every grant that is due (grant_expiry_due, src/db/functions/money_rules.sql:
 * past its expires_at, and no hold taken while it was live still live): its unused part leaves
 * the org's credits. Idempotent per grant; the balance already
 * excludes these amounts from the moment they expire (see getBalance), so this only makes the
 * ledger say so.
 */
export async function expireGrants(ctx: BillingContext, input: { limit?: number } = {}): Promise<number> {
  const { sql } = ctx;
  const now = ctx.clock();
  const limit = input.limit ?? 500;
  const due = await sql<{ id: string; org_id: string }[]>`select id, org_id from grant_expiry_due(${now}, ${limit})`;
  let posted = 0;
  for (const { id } of due) {
    if ((await withTransaction(ctx, ({ sql: tx }) => postGrantEnd(tx, id, now))) !== null) posted++;
  }
  return posted;
}

/**
 * Posts the end of one grant whose expires_at has passed, under its org's lock: its unused part
 * (amount - consumed) leaves the org's credits, as a 'grant_expiry' to system:grant_expiry, or,
 * for a grant taken back by clawBackGrant, as a 'referral_clawback' back to system:grants. Waits
 * (returns null, the expire-grants job posts it later) while a hold taken while the grant was live
 * is still live (grant_expiry_waits). Returns what it took, null if it posted nothing now.
 */
export async function postGrantEnd(tx: TransactionSql, grantId: string, now: Date): Promise<bigint | null> {
  const [owner] = await tx<{ org_id: string }[]>`select org_id from credit_grants where id = ${grantId}`;
  if (!owner) return null;
  // Org account first, grant second: the same lock order as the usage path, so no deadlock.
  await tx`select 1 from ledger_accounts where id = ${orgCreditsAccount(owner.org_id)} for update`;
  // Checked again under the lock: another worker may have posted it. (No hold from before the
  // expiry can appear since: the expiry is past.)
  const [grant] = await tx<(GrantRow & { take: bigint; clawed_back_at: Date | null })[]>`
    select g.*, g.amount - g.consumed as take
    from credit_grants g
    where g.id = ${grantId} and g.expired_at is null and g.expires_at <= ${now}
      and not grant_expiry_waits(g.org_id, g.created_at, g.expires_at, ${now})
    for update of g`;
  if (!grant) return null;
  const take = grant.take;
  const clawback = grant.clawed_back_at !== null;
  if (take > 0n) {
    const lowBalance = await watchLowBalance(tx, grant.org_id, now);
    const posted = await postTransfer(tx, {
      kind: clawback ? "referral_clawback" : "grant_expiry",
      orgId: grant.org_id,
      idempotencyKey: grant.id,
      description: clawback ? `clawback of grant ${grant.id}` : `expiry of grant ${grant.id}`,
      metadata: { grant_id: grant.id },
      from: orgCreditsAccount(grant.org_id),
      to: clawback ? SystemAccounts.grants : SystemAccounts.grantExpiry,
      amount: take,
      createdAt: now,
    });
    await lowBalance(posted.created ? posted.transactionId : null);
  }
  await tx`update credit_grants set expired_at = ${now}, expired_amount = ${take.toString()} where id = ${grantId}`;
  return take;
}

/**
 * Takes back what is unspent of a grant (a referral reward whose qualifying top-up was reversed):
 * the grant expires now, and its end is posted by the expiry rule (postGrantEnd) as a
 * 'referral_clawback', so it takes exactly the unused part, never what was already spent, and
 * waits like an expiry for live holds funded by it. Only for grants that carry an expiry (their
 * consumption is tracked, consume_expiring_grants); a grant already ended gives nothing back.
 * Call in the caller's transaction; returns what was taken now, or null when nothing was taken
 * now (already ended, or waiting for live holds: the expire-grants job posts it).
 */
export async function clawBackGrant(tx: TransactionSql, grantId: string, now: Date): Promise<bigint | null> {
  const [grant] = await tx<{ org_id: string; expires_at: Date | null }[]>`
    select org_id, expires_at from credit_grants where id = ${grantId}`;
  if (!grant) throw new Error(`no credit grant ${grantId}`);
  if (grant.expires_at === null)
    throw new Error(`grant ${grantId} has no expiry: what is unspent of it is not tracked`);
  await tx`select 1 from ledger_accounts where id = ${orgCreditsAccount(grant.org_id)} for update`;
  const [marked] = await tx`
    update credit_grants set clawed_back_at = ${now}, expires_at = least(expires_at, ${now})
    where id = ${grantId} and expired_at is null and clawed_back_at is null
    returning 1`;
  if (!marked) return null;
  return postGrantEnd(tx, grantId, now);
}

/**
 * The organization's grants that spending can still draw on (expiring, not yet expired as posted,
 * something left), in (expires_at, id) order, and what each keeps once its live holds settle, as
 * far as their draws are sure (grantsLeftAfterHolds). Read under the org's lock.
 */
export async function grantsAfterLiveHolds(
  sql: Sql | TransactionSql,
  orgId: string,
  now: Date,
): Promise<{ grants: { id: string; source: string; expiresAt: Date }[]; left: Map<string, bigint> }> {
  const grants = await sql<{ id: string; free: bigint; source: string; created_at: Date; expires_at: Date }[]>`
    select id, amount - consumed as free, source, created_at, expires_at from credit_grants
    where org_id = ${orgId} and expires_at is not null and expired_at is null and consumed < amount
    order by expires_at, id`;
  const holds =
    grants.length === 0
      ? []
      : await sql<{ amount: bigint; created_at: Date }[]>`
          select amount, created_at from holds
          where org_id = ${orgId} and status = 'active' and hold_live_at(status, expires_at, ${now})
          order by created_at, id`;
  const left = grantsLeftAfterHolds(
    grants.map((g) => ({ id: g.id, free: BigInt(g.free), createdAt: g.created_at, expiresAt: g.expires_at })),
    holds.map((h) => ({ amount: BigInt(h.amount), createdAt: h.created_at })),
  );
  return { grants: grants.map((g) => ({ id: g.id, source: g.source, expiresAt: g.expires_at })), left };
}
