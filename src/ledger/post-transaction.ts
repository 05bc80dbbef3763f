import { createHash } from "node:crypto";
import type { TransactionSql } from "../db/client.js";
import { BillingError } from "../errors.js";
import { newId } from "../ids.js";

export type TransactionKind =
  | "grant"
  | "grant_expiry"
  | "husd_deposit"
  | "card_topup"
  | "hold"
  | "hold_expiry"
  | "usage"
  | "invoice_settlement"
  | "reversal"
  | "promo_credit"
  | "referral_credit"
  | "referral_clawback"
  | "credit_note";

export type Entry = { accountId: string; amount: bigint };

export type Posting = {
  kind: TransactionKind;
  orgId: string | null;
  /** Unique per kind: the same key never moves money twice. */
  idempotencyKey: string;
  /** What the caller asked for; a reused key with a different request is refused, not replayed. */
  fingerprint?: string;
  description?: string;
  metadata?: Record<string, unknown>;
  entries: Entry[];
  createdAt?: Date;
};

export type PostResult = { transactionId: string; created: boolean };

export class UnbalancedPostingError extends Error {
  override name = "UnbalancedPostingError";
}

export function fingerprint(value: unknown): string {
  return createHash("sha256")
    .update(JSON.stringify(value, (_k, v) => (typeof v === "bigint" ? v.toString() : v)))
    .digest("hex");
}

/** Checks the double-entry rule in code too, so a bug fails here with a clear message before PostgreSQL refuses it. */
export function assertBalanced(entries: Entry[]): void {
  if (entries.length < 2) throw new UnbalancedPostingError("a ledger transaction needs at least two entries");
  let sum = 0n;
  for (const e of entries) {
    if (e.amount === 0n) throw new UnbalancedPostingError(`zero entry on ${e.accountId}`);
    sum += e.amount;
  }
  if (sum !== 0n) throw new UnbalancedPostingError(`entries sum to ${sum}, not zero`);
}

/**
 * Records one balanced movement, exactly once per (kind, idempotency key). Runs inside the
 * caller's transaction so the movement commits together with whatever it pays for. On a
 * replay (including the loser of a race, which waits on the unique index until the winner
 * commits) it returns the first transaction and writes nothing.
 */
export async function postTransaction(tx: TransactionSql, posting: Posting): Promise<PostResult> {
  assertBalanced(posting.entries);
  const id = newId("txn");
  // The entries carry the transaction's created_at: it is their partition key (migration 0035).
  const createdAt = posting.createdAt ?? new Date();
  const inserted = await tx<{ id: string }[]>`
    insert into ledger_transactions (id, org_id, kind, idempotency_key, request_fingerprint, description, metadata, created_at)
    values (${id}, ${posting.orgId}, ${posting.kind}, ${posting.idempotencyKey}, ${posting.fingerprint ?? null},
            ${posting.description ?? null}, ${tx.json((posting.metadata ?? {}) as never)}, ${createdAt})
    on conflict (kind, idempotency_key) do nothing
    returning id`;
  if (inserted.length === 0) {
    const existing = await findPosted(tx, posting);
    if (!existing) throw new Error("idempotency conflict without a row: impossible under read committed");
    return { transactionId: existing, created: false };
  }
  const rows = posting.entries.map((e) => ({
    transaction_id: id,
    account_id: e.accountId,
    amount: e.amount.toString(),
    created_at: createdAt,
  }));
  await tx`insert into ledger_entries ${tx(rows, "transaction_id", "account_id", "amount", "created_at")}`;
  return { transactionId: id, created: true };
}

/**
 * A movement of `amount` from one account to another: the two entries of every posting but
 * metering's (one entry per organization and one to revenue for their sum, written in SQL by
 * metering_post). `amount` may be negative (money the other way), never zero.
 */
export function transfer(from: string, to: string, amount: bigint): Entry[] {
  return [
    { accountId: from, amount: -amount },
    { accountId: to, amount },
  ];
}

export type Transfer = Omit<Posting, "entries"> & { from: string; to: string; amount: bigint };

/** Posts one transfer (see `transfer` and `postTransaction`). */
export function postTransfer(tx: TransactionSql, posting: Transfer): Promise<PostResult> {
  const { from, to, amount, ...rest } = posting;
  return postTransaction(tx, { ...rest, entries: transfer(from, to, amount) });
}

/**
 * The id of the transaction already posted under this posting's key, or null if there is none; a
 * key used by another request (another organization or fingerprint) is refused. A verb whose
 * checks depend on the time (a grant's expires_at) looks here first, so that a retry answers
 * what the first request did instead of being judged again against a later clock.
 */
export async function findPosted(
  tx: TransactionSql,
  posting: Pick<Posting, "kind" | "idempotencyKey" | "orgId" | "fingerprint">,
): Promise<string | null> {
  const [existing] = await tx<{ id: string; request_fingerprint: string | null; org_id: string | null }[]>`
    select id, request_fingerprint, org_id from ledger_transactions
    where kind = ${posting.kind} and idempotency_key = ${posting.idempotencyKey}`;
  if (!existing) return null;
  if (
    existing.org_id !== posting.orgId ||
    (posting.fingerprint && existing.request_fingerprint !== posting.fingerprint)
  ) {
    throw new BillingError("idempotency_key_reused", "this idempotency key was already used for a different request");
  }
  return existing.id;
}
