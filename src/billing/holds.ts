import type { Sql, TransactionSql } from "../db/client.js";
import { BillingError } from "../errors.js";
import { newId } from "../ids.js";
import { orgCreditsAccount, orgHeldAccount } from "../ledger/accounts.js";
import { formatUsd } from "../ledger/money.js";
import { netEntries, postTransactions, type Posting } from "../ledger/post-transaction.js";
import { lockOrgs, spendable, type LockedOrg } from "./org-locks.js";

export type AuthorizeRequest = {
  orgId: string;
  product: string;
  model: string | undefined;
  estimate: Record<string, bigint>;
  amount: bigint; // priced before batching
  catalogVersion: string;
  idempotencyKey: string | undefined;
  ttlSeconds: number;
};

export type Hold = {
  id: string;
  orgId: string;
  amount: bigint;
  status: "active" | "settled" | "expired" | "released";
  expiresAt: Date;
  createdAt: Date;
  catalogVersion: string;
  replayed: boolean;
};

type HoldRow = { id: string; org_id: string; amount: bigint; status: Hold["status"]; expires_at: Date; created_at: Date; catalog_version: string; idempotency_key: string | null };
const toHold = (r: HoldRow, replayed: boolean): Hold => ({
  id: r.id,
  orgId: r.org_id,
  amount: r.amount,
  status: r.status,
  expiresAt: r.expires_at,
  createdAt: r.created_at,
  catalogVersion: r.catalog_version,
  replayed,
});

/**
 * Authorizes a batch of estimated costs in one transaction: each either becomes a hold that
 * moves its amount from the org's credits to its held account, or fails with 402. Orders within
 * an organization are decided one by one against the locked balance, so N racing requests
 * that together exceed it get exactly as many holds as it covers.
 */
export async function authorizeBatch(sql: Sql, requests: AuthorizeRequest[], now: Date): Promise<(Hold | BillingError)[]> {
  return sql.begin(async (tx) => {
    const orgIds = requests.map((r) => r.orgId);
    // Pipelined after the lock: one round trip for the lock and every read.
    const [orgs, expired, replays] = await Promise.all([lockOrgs(tx, orgIds, now), findExpiredHolds(tx, orgIds, now), findByIdempotencyKey(tx, requests)]);
    const postings: (Posting & { id: string })[] = [];
    const writes: Promise<unknown>[] = [];
    releaseExpired(tx, orgs, expired, now, postings, writes);

    const outcomes: (Hold | BillingError)[] = [];
    const newHolds: { row: HoldRow; request: AuthorizeRequest; txn: string | null }[] = [];
    const heldPerOrg = new Map<string, { txnId: string; total: bigint }>();
    for (const r of requests) {
      const org = orgs.get(r.orgId);
      if (!org) {
        outcomes.push(new BillingError("unknown_organization", `no organization ${r.orgId}`, { details: { param: "org_id" } }));
        continue;
      }
      const key = r.idempotencyKey ? `${r.orgId}\u0000${r.idempotencyKey}` : null;
      const replay = key ? replays.get(key) : undefined;
      if (replay) {
        outcomes.push(toHold(replay, true));
        continue;
      }
      const available = spendable(org);
      if (r.amount > available) {
        outcomes.push(
          new BillingError(
            "insufficient_balance",
            `this request needs ${formatUsd(r.amount)} USD but only ${formatUsd(available > 0n ? available : 0n)} USD is available; top up to continue`,
          ),
        );
        continue;
      }
      org.credits -= r.amount;
      let perOrg = heldPerOrg.get(r.orgId);
      if (!perOrg) heldPerOrg.set(r.orgId, (perOrg = { txnId: newId("txn"), total: 0n }));
      perOrg.total += r.amount;
      const row: HoldRow = {
        id: newId("hold"),
        org_id: r.orgId,
        amount: r.amount,
        status: "active",
        expires_at: new Date(now.getTime() + r.ttlSeconds * 1000),
        created_at: now,
        catalog_version: r.catalogVersion,
        idempotency_key: r.idempotencyKey ?? null,
      };
      newHolds.push({ row, request: r, txn: r.amount > 0n ? perOrg.txnId : null });
      if (key) replays.set(key, row); // a repeat of the key later in this same batch replays it
      outcomes.push(toHold(row, false));
    }

    for (const [orgId, { txnId, total }] of heldPerOrg) {
      if (total === 0n) continue;
      postings.push({
        id: txnId,
        kind: "hold",
        orgId,
        idempotencyKey: txnId,
        description: "authorization holds",
        entries: [
          { accountId: orgCreditsAccount(orgId), amount: -total },
          { accountId: orgHeldAccount(orgId), amount: total },
        ],
        createdAt: now,
      });
    }
    if (newHolds.length > 0) {
      const rows = newHolds.map(({ row, request, txn }) => ({
        id: row.id,
        org_id: row.org_id,
        amount: row.amount.toString(),
        status: "active",
        idempotency_key: row.idempotency_key,
        product: request.product,
        model: request.model ?? "",
        estimate: Object.fromEntries(Object.entries(request.estimate).map(([k, v]) => [k, v.toString()])) as never,
        catalog_version: row.catalog_version,
        expires_at: row.expires_at,
        created_at: row.created_at,
        transaction_id: txn,
      }));
      writes.push(tx`insert into holds ${tx(rows, "id", "org_id", "amount", "status", "idempotency_key", "product", "model", "estimate", "catalog_version", "expires_at", "created_at", "transaction_id")}`);
    }
    writes.push(postTransactions(tx, postings));
    await Promise.all(writes);
    return outcomes;
  });
}

async function findByIdempotencyKey(tx: TransactionSql, requests: AuthorizeRequest[]): Promise<Map<string, HoldRow>> {
  const keyed = requests.filter((r) => r.idempotencyKey);
  if (keyed.length === 0) return new Map();
  const rows = await tx<HoldRow[]>`
    select h.* from holds h
    join unnest(${keyed.map((r) => r.orgId)}::text[], ${keyed.map((r) => r.idempotencyKey!)}::text[]) as k(org_id, key)
      on h.org_id = k.org_id and h.idempotency_key = k.key`;
  return new Map(rows.map((r) => [`${r.org_id}\u0000${r.idempotency_key}`, r]));
}

type ExpiredHold = { id: string; org_id: string; amount: bigint };

/** Active holds past their expiry, of organizations this transaction locks (it runs after lockOrgs). */
function findExpiredHolds(tx: TransactionSql, orgIds: string[], now: Date) {
  return tx<ExpiredHold[]>`
    select id, org_id, amount from holds
    where org_id = any(${[...new Set(orgIds)]}) and status = 'active' and expires_at <= ${now}
    order by id for update`;
}

/**
 * Returns the amounts of expired holds of locked orgs to their credits. Runs inside
 * authorization batches (so an expired hold never blocks spending while the sweeper sleeps) and
 * in the sweeper. Adds postings and queues the hold updates; the caller awaits `writes`.
 */
function releaseExpired(
  tx: TransactionSql,
  orgs: Map<string, LockedOrg>,
  expired: ExpiredHold[],
  now: Date,
  postings: (Posting & { id: string })[],
  writes: Promise<unknown>[],
) {
  const perOrg = new Map<string, { txnId: string; total: bigint; ids: string[] }>();
  for (const h of expired) {
    if (!orgs.has(h.org_id)) continue;
    let p = perOrg.get(h.org_id);
    if (!p) perOrg.set(h.org_id, (p = { txnId: newId("txn"), total: 0n, ids: [] }));
    p.total += h.amount;
    p.ids.push(h.id);
  }
  for (const [orgId, p] of perOrg) {
    const entries = netEntries([
      { accountId: orgHeldAccount(orgId), amount: -p.total },
      { accountId: orgCreditsAccount(orgId), amount: p.total },
    ]);
    const hasMoney = entries.length > 0;
    if (hasMoney) {
      postings.push({ id: p.txnId, kind: "release", orgId, idempotencyKey: p.txnId, description: "expired holds released", metadata: { holds: p.ids.length }, entries, createdAt: now });
      const org = orgs.get(orgId)!;
      org.credits += p.total;
      org.held -= p.total;
    }
    writes.push(tx`update holds set status = 'expired', closed_at = ${now}, close_transaction_id = ${hasMoney ? p.txnId : null}
                   where id = any(${p.ids})`);
  }
}

/** The sweeper: releases expired holds of every organization, a bounded number of orgs per call. */
export async function releaseExpiredHolds(sql: Sql, now: Date, maxOrgs = 200): Promise<number> {
  const due = await sql<{ org_id: string }[]>`
    select distinct org_id from holds where status = 'active' and expires_at <= ${now} limit ${maxOrgs}`;
  if (due.length === 0) return 0;
  return sql.begin(async (tx) => {
    const orgIds = due.map((d) => d.org_id);
    const [orgs, expired] = await Promise.all([lockOrgs(tx, orgIds, now), findExpiredHolds(tx, orgIds, now)]);
    const postings: (Posting & { id: string })[] = [];
    const writes: Promise<unknown>[] = [];
    releaseExpired(tx, orgs, expired, now, postings, writes);
    writes.push(postTransactions(tx, postings));
    await Promise.all(writes);
    return expired.length;
  });
}
