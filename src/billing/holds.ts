import type { Sql } from "../db/client.js";
import { BillingError } from "../errors.js";
import { newId } from "../ids.js";
import { formatUsd } from "../ledger/money.js";
import { callMeteringBatch, countsJson, pgArray, previousWithSameKey, type AuthorizeParams } from "./group-commit.js";

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

type AuthorizeOutcome = "held" | "replayed" | "insufficient_balance" | "unknown_organization";
type AuthorizeDetail =
  | { k: number; available: string }
  | { k: number; id: string; amount: string; status: Hold["status"]; expires_at: string; created_at: string; catalog_version: string };
/** What metering_batch (migration 0010) answers for the authorizations; amounts in `details` are strings. */
export type AuthorizeAnswer = { outcomes: AuthorizeOutcome[]; details: AuthorizeDetail[] | null };

/**
 * A batch's authorizations as metering_batch's a_* arrays (migration 0010, which holds the
 * money rules: see there and src/billing/metering.ts). `orgIndex` points each request at its
 * organization in the batch's p_orgs (1-based).
 */
export type PreparedAuthorize = ReturnType<typeof prepareAuthorize>;

export function prepareAuthorize(requests: AuthorizeRequest[], now: Date, orgIndex: number[]) {
  const expiresAt = requests.map((r) => new Date(now.getTime() + r.ttlSeconds * 1000));
  const holdIds = requests.map(() => newId("hold"));
  const keys = requests.map((r) => r.idempotencyKey);
  return {
    requests,
    now,
    expiresAt,
    holdIds,
    params: {
      orgIndex: pgArray(orgIndex),
      holdIds: pgArray(holdIds),
      amounts: pgArray(requests.map((r) => r.amount)),
      // null as a whole when no request has a key: the replay lookup is skipped
      keys: keys.some((key) => key !== undefined) ? pgArray(keys) : null,
      previous: pgArray(previousWithSameKey(keys, orgIndex)),
      products: pgArray(requests.map((r) => r.product)),
      models: pgArray(requests.map((r) => r.model ?? "")),
      estimates: pgArray(requests.map((r) => countsJson(r.estimate))),
      versions: pgArray(requests.map((r) => r.catalogVersion)),
      expiresAt: pgArray(expiresAt.map((d) => d.toISOString())),
    } satisfies AuthorizeParams,
  };
}

/** Turns metering_batch's answer for the authorizations into one hold or error per request. */
export function authorizeOutcomes(a: PreparedAuthorize, res: AuthorizeAnswer): (Hold | BillingError)[] {
  const details = new Map((res.details ?? []).map((d) => [d.k - 1, d]));
  return a.requests.map((r, k): Hold | BillingError => {
    const detail = details.get(k);
    switch (res.outcomes[k]) {
      case "held":
        return { id: a.holdIds[k]!, orgId: r.orgId, amount: r.amount, status: "active", expiresAt: a.expiresAt[k]!, createdAt: a.now, catalogVersion: r.catalogVersion, replayed: false };
      case "replayed": {
        const d = detail as Extract<typeof detail, { id: string }>;
        return {
          id: d.id,
          orgId: r.orgId,
          amount: BigInt(d.amount),
          status: d.status,
          expiresAt: new Date(d.expires_at),
          createdAt: new Date(d.created_at),
          catalogVersion: d.catalog_version,
          replayed: true,
        };
      }
      case "insufficient_balance": {
        const available = BigInt((detail as Extract<typeof detail, { available: string }>).available);
        return new BillingError(
          "insufficient_balance",
          `this request needs ${formatUsd(r.amount)} USD but only ${formatUsd(available > 0n ? available : 0n)} USD is available; top up to continue`,
        );
      }
      case "unknown_organization":
        return new BillingError("unknown_organization", `no organization ${r.orgId}`, { details: { param: "org_id" } });
      default:
        throw new Error(`metering_batch returned no outcome for authorization ${k}`);
    }
  });
}

/**
 * The sweeper: releases expired holds of every organization, a bounded number of orgs per call.
 * It is a metering batch without requests (migration 0010): the organizations are locked as for
 * any batch, and their expired holds go back to their credits in one 'release' per org.
 */
export async function releaseExpiredHolds(sql: Sql, now: Date, maxOrgs = 200): Promise<number> {
  const due = await sql<{ org_id: string }[]>`
    select distinct org_id from holds where status = 'active' and expires_at <= ${now} limit ${maxOrgs}`;
  if (due.length === 0) return 0;
  const orgs = due.map((d) => d.org_id);
  const none = pgArray(orgs.map(() => null));
  const res = await callMeteringBatch(
    sql,
    now,
    { orgs: pgArray(orgs), usageTxns: none, releaseTxns: pgArray(orgs.map(() => newId("txn"))), holdTxns: none, alertIds: none },
    null,
    null,
  );
  return res.released_holds;
}
