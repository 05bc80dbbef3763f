import type { Sql, TransactionSql } from "../db/client.js";
import { BillingError } from "../errors.js";
import { newId } from "../ids.js";
import { orgCreditsAccount, orgHeldAccount, SystemAccounts } from "../ledger/accounts.js";
import { netEntries, postTransactions, type Posting } from "../ledger/post-transaction.js";
import { consumeExpiringGrants } from "./grants.js";
import { lockOrgs, spendable } from "./org-locks.js";

export type UsageRequest = {
  orgId: string;
  idempotencyKey: string;
  occurredAt: Date;
  product: string;
  model: string | undefined;
  quantities: Record<string, bigint>;
  cost: bigint; // priced before batching, by the catalog version in force at occurredAt
  catalogVersion: string;
  holdId: string | undefined;
};

export type UsageResult = {
  usageId: string;
  idempotencyKey: string;
  cost: bigint;
  catalogVersion: string;
  holdId: string | null;
  /** What happened to the hold: released now, or already closed (its amount was returned before). */
  holdOutcome: "released" | "already_closed" | null;
  replayed: boolean;
};

export type LowBalanceCrossing = { alertId: string; orgId: string; balance: bigint; threshold: bigint };

type UsageRow = { id: string; org_id: string; idempotency_key: string; cost: bigint; catalog_version: string; hold_id: string | null };

/**
 * Records a batch of usage events in one transaction: each is debited once (the unique key on
 * (org, idempotency key) decides), its hold is released in the same posting, and one ledger
 * transaction per organization carries the batch's money. A repeated key returns the first
 * result and moves nothing. Costs above the hold are still charged: the org's credits may go
 * negative by at most the overrun of the requests it was authorized for.
 */
export async function recordUsageBatch(
  sql: Sql,
  requests: UsageRequest[],
  now: Date,
): Promise<{ outcomes: (UsageResult | BillingError)[]; crossings: LowBalanceCrossing[] }> {
  return sql.begin(async (tx) => {
    // Pipelined: sent together, executed in order on this connection, so the reads run after the
    // org locks are held but cost one network round trip instead of three.
    const [orgs, firstResults, holds] = await Promise.all([
      lockOrgs(tx, requests.map((r) => r.orgId), now),
      findExisting(tx, requests),
      findHolds(tx, requests),
    ]);

    const outcomes: (UsageResult | BillingError)[] = [];
    const perOrg = new Map<string, { txnId: string; cost: bigint; released: bigint; events: number; releasedHoldIds: string[] }>();
    const rows: Record<string, unknown>[] = [];
    // Balance (credits + held) before this batch, per org, to detect a downward threshold crossing.
    const before = new Map([...orgs].map(([id, o]) => [id, spendable(o) + o.held]));

    for (const r of requests) {
      const org = orgs.get(r.orgId);
      if (!org) {
        outcomes.push(new BillingError("unknown_organization", `no organization ${r.orgId}`, { details: { param: "org_id" } }));
        continue;
      }
      const key = `${r.orgId}\u0000${r.idempotencyKey}`;
      const first = firstResults.get(key);
      if (first) {
        outcomes.push({ ...first, replayed: true });
        continue;
      }
      let holdOutcome: UsageResult["holdOutcome"] = null;
      let release = 0n;
      if (r.holdId) {
        const hold = holds.get(r.holdId);
        if (!hold || hold.org_id !== r.orgId) {
          outcomes.push(new BillingError("hold_not_found", `no hold ${r.holdId} for organization ${r.orgId}`, { details: { param: "hold_id" } }));
          continue;
        }
        if (hold.status === "active") {
          hold.status = "settled"; // a second event naming the same hold in this batch must not release it twice
          release = hold.amount;
          holdOutcome = "released";
        } else {
          holdOutcome = "already_closed";
        }
      }
      let p = perOrg.get(r.orgId);
      if (!p) perOrg.set(r.orgId, (p = { txnId: newId("txn"), cost: 0n, released: 0n, events: 0, releasedHoldIds: [] }));
      p.cost += r.cost;
      p.released += release;
      p.events++;
      if (holdOutcome === "released") p.releasedHoldIds.push(r.holdId!);
      org.credits += release - r.cost;
      org.held -= release;

      const result: UsageResult = {
        usageId: newId("use"),
        idempotencyKey: r.idempotencyKey,
        cost: r.cost,
        catalogVersion: r.catalogVersion,
        holdId: r.holdId ?? null,
        holdOutcome,
        replayed: false,
      };
      firstResults.set(key, result);
      outcomes.push(result);
      rows.push({
        id: result.usageId,
        org_id: r.orgId,
        idempotency_key: r.idempotencyKey,
        occurred_at: r.occurredAt,
        product: r.product,
        model: r.model ?? "",
        quantities: Object.fromEntries(Object.entries(r.quantities).map(([m, q]) => [m, q.toString()])),
        cost: r.cost.toString(),
        catalog_version: r.catalogVersion,
        hold_id: r.holdId ?? null,
        transaction_id: p.txnId,
        recorded_at: now,
      });
    }

    const postings: (Posting & { id: string })[] = [];
    const crossings: LowBalanceCrossing[] = [];
    const settled: { id: string; txn: string | null }[] = [];
    for (const [orgId, p] of perOrg) {
      const entries = netEntries([
        { accountId: orgHeldAccount(orgId), amount: -p.released },
        { accountId: orgCreditsAccount(orgId), amount: p.released - p.cost },
        { accountId: SystemAccounts.revenue, amount: p.cost },
      ]);
      if (entries.length > 0) {
        postings.push({ id: p.txnId, kind: "usage", orgId, idempotencyKey: p.txnId, description: "metered usage", metadata: { events: p.events }, entries, createdAt: now });
      } else {
        for (const row of rows) if (row.transaction_id === p.txnId) row.transaction_id = null;
      }
      for (const id of p.releasedHoldIds) settled.push({ id, txn: entries.length > 0 ? p.txnId : null });
      const org = orgs.get(orgId)!;
      if (org.hasExpiringGrants && p.cost > 0n) await consumeExpiringGrants(tx, orgId, p.cost, now);
      const after = spendable(org) + org.held;
      if (before.get(orgId)! >= org.threshold && after < org.threshold && entries.length > 0) {
        crossings.push({ alertId: newId("alert"), orgId, balance: after, threshold: org.threshold });
      }
    }
    // Every write of the batch in one pipelined round trip; foreign keys to the ledger are
    // deferred to commit, and statements run in the order they were sent.
    const writes: Promise<unknown>[] = [postTransactions(tx, postings)];
    if (settled.length > 0) {
      writes.push(tx`
        update holds h set status = 'settled', closed_at = ${now}, close_transaction_id = m.txn
        from unnest(${settled.map((s) => s.id)}::text[], ${settled.map((s) => s.txn)}::text[]) as m(id, txn)
        where h.id = m.id and h.status = 'active'`);
    }
    if (rows.length > 0) {
      writes.push(tx`insert into usage_events ${tx(rows, "id", "org_id", "idempotency_key", "occurred_at", "product", "model", "quantities", "cost", "catalog_version", "hold_id", "transaction_id", "recorded_at")}`);
    }
    if (crossings.length > 0) {
      const alertRows = crossings.map((c) => ({
        id: c.alertId,
        org_id: c.orgId,
        balance: c.balance.toString(),
        threshold: c.threshold.toString(),
        transaction_id: perOrg.get(c.orgId)!.txnId,
        created_at: now,
      }));
      writes.push(tx`insert into balance_alerts ${tx(alertRows, "id", "org_id", "balance", "threshold", "transaction_id", "created_at")}`);
    }
    await Promise.all(writes);
    return { outcomes, crossings };
  });
}

async function findExisting(tx: TransactionSql, requests: UsageRequest[]): Promise<Map<string, UsageResult>> {
  if (requests.length === 0) return new Map();
  const rows = await tx<(UsageRow & { hold_outcome: string | null })[]>`
    select u.id, u.org_id, u.idempotency_key, u.cost, u.catalog_version, u.hold_id
    from usage_events u
    join unnest(${requests.map((r) => r.orgId)}::text[], ${requests.map((r) => r.idempotencyKey)}::text[]) as k(org_id, key)
      on u.org_id = k.org_id and u.idempotency_key = k.key`;
  return new Map(
    rows.map((r) => [
      `${r.org_id}\u0000${r.idempotency_key}`,
      { usageId: r.id, idempotencyKey: r.idempotency_key, cost: r.cost, catalogVersion: r.catalog_version, holdId: r.hold_id, holdOutcome: null, replayed: true },
    ]),
  );
}

async function findHolds(tx: TransactionSql, requests: UsageRequest[]) {
  const ids = [...new Set(requests.flatMap((r) => (r.holdId ? [r.holdId] : [])))];
  if (ids.length === 0) return new Map<string, { org_id: string; amount: bigint; status: string }>();
  // Locked so that the sweeper cannot expire a hold while this batch settles it.
  const rows = await tx<{ id: string; org_id: string; amount: bigint; status: string }[]>`
    select id, org_id, amount, status from holds where id = any(${ids}) order by id for update`;
  return new Map(rows.map((r) => [r.id, r]));
}
