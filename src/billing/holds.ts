import { BillingError } from "../errors.js";
import { formatUsd } from "../ledger/money.js";
import type { BillingContext } from "./context.js";
import { at, callMeteringBatch, countsObject, previousWithSameKey, type BatchAuthorization } from "./group-commit.js";

export type AuthorizeRequest = {
  orgId: string;
  /**
   * The id its hold gets if granted, chosen when the request is made: a request written again
   * after a lost answer names the same hold, so the first attempt's hold is found, not doubled.
   */
  holdId: string;
  product: string;
  model: string | undefined;
  estimate: Record<string, bigint>;
  amount: bigint; // priced before batching
  catalogVersion: string;
  idempotencyKey: string | undefined;
  ttlSeconds: number;
  /** The org's key the gateway served (attribution); must be a key of orgId. */
  apiKeyId?: string | undefined;
  /** The customer's project label (attribution). */
  project?: string | undefined;
};

export type Hold = {
  id: string;
  orgId: string;
  amount: bigint;
  status: "active" | "settled" | "expired";
  expiresAt: Date;
  createdAt: Date;
  catalogVersion: string;
  replayed: boolean;
};

type AuthorizeOutcome =
  | "held"
  | "replayed"
  | "idempotency_key_reused"
  | "insufficient_balance"
  | "spend_limit_reached"
  | "unknown_organization"
  | "unknown_api_key";
/** A hard budget that refused an authorization, as metering_decide tells it (amounts in nano-USD strings). */
export type BudgetRefusal = {
  k: number;
  budget_id: string;
  scope: "org" | "project" | "key";
  target: string;
  limit: string;
  spent: string;
  held: string;
  period_start: string;
};
type AuthorizeDetail =
  | { k: number; available: string }
  | BudgetRefusal
  | {
      k: number;
      id: string;
      amount: string;
      status: Hold["status"];
      expires_at: string;
      created_at: string;
      catalog_version: string;
    };
/** What metering_batch (src/db/functions/metering.sql) answers for the authorizations; amounts in `details` are strings. */
export type AuthorizeAnswer = { outcomes: AuthorizeOutcome[]; details: AuthorizeDetail[] | null };

/**
 * A batch's authorizations as metering_batch's input (src/db/functions/metering.sql, which holds
 * the money rules). `orgIndex` points each request at its organization in the batch (1-based).
 */
export type PreparedAuthorize = ReturnType<typeof prepareAuthorize>;

/**
 * `again`: the requests are written again after a failed write (GroupCommitter), so each without
 * an idempotency key is first looked for by its hold id (metering_decide's `recheck`).
 */
export function prepareAuthorize(requests: AuthorizeRequest[], now: Date, orgIndex: number[], again = false) {
  const expiresAt = requests.map((r) => new Date(now.getTime() + r.ttlSeconds * 1000));
  const holdIds = requests.map((r) => r.holdId);
  const previous = previousWithSameKey(
    requests.map((r) => r.idempotencyKey),
    orgIndex,
  );
  return {
    requests,
    now,
    expiresAt,
    holdIds,
    input: requests.map(
      (r, k): BatchAuthorization => ({
        org: at(orgIndex, k, "organization index"),
        hold_id: at(holdIds, k, "hold id"),
        amount: r.amount.toString(),
        key: r.idempotencyKey ?? null,
        prev: at(previous, k, "previous-key index"),
        product: r.product,
        model: r.model ?? "",
        estimate: countsObject(r.estimate),
        catalog_version: r.catalogVersion,
        ttl_seconds: r.ttlSeconds,
        ...(r.apiKeyId !== undefined ? { api_key_id: r.apiKeyId } : {}),
        ...(r.project !== undefined ? { project: r.project } : {}),
        ...(again && r.idempotencyKey === undefined ? { recheck: true } : {}),
      }),
    ),
  };
}

/** Turns metering_batch's answer for the authorizations into one hold or error per request. */
export function authorizeOutcomes(a: PreparedAuthorize, res: AuthorizeAnswer): (Hold | BillingError)[] {
  const details = new Map((res.details ?? []).map((d) => [d.k - 1, d]));
  return a.requests.map((r, k): Hold | BillingError => {
    const detail = details.get(k);
    switch (res.outcomes[k]) {
      case "held":
        return {
          id: at(a.holdIds, k, "hold id"),
          orgId: r.orgId,
          amount: r.amount,
          status: "active",
          expiresAt: at(a.expiresAt, k, "hold expiry"),
          createdAt: a.now,
          catalogVersion: r.catalogVersion,
          replayed: false,
        };
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
      case "idempotency_key_reused":
        return new BillingError(
          "idempotency_key_reused",
          "this idempotency key was already used for an authorization with another product, model, estimate, ttl_seconds, api_key_id or project",
          { details: { param: "idempotency_key" } },
        );
      case "insufficient_balance": {
        const available = BigInt((detail as Extract<typeof detail, { available: string }>).available);
        return new BillingError(
          "insufficient_balance",
          `this request needs ${formatUsd(r.amount)} USD but only ${formatUsd(available > 0n ? available : 0n)} USD is available; top up to continue`,
        );
      }
      case "spend_limit_reached":
        return spendLimitReached(r.amount, detail as BudgetRefusal);
      case "unknown_organization":
        return new BillingError("unknown_organization", `no organization ${r.orgId}`, { details: { param: "org_id" } });
      case "unknown_api_key":
        return unknownApiKey(r.apiKeyId, r.orgId);
      default:
        throw new Error(`metering_batch returned no outcome for authorization ${k}`);
    }
  });
}

/**
 * The sweeper: expires the holds past their expiry of every organization, a bounded number of
 * orgs per call. It is a metering batch without requests: the organizations are locked as for
 * any batch, and their expired holds stop reserving their amounts (nothing moves on the ledger:
 * a hold is a reservation on the credits account). Returns how many holds it expired.
 */
export async function expireHolds(ctx: BillingContext, input: { maxOrgs?: number } = {}): Promise<number> {
  const { sql } = ctx;
  const now = ctx.clock();
  const maxOrgs = input.maxOrgs ?? 200;
  // `org_id <> ''` (always true) lets this query use holds_active_expiry, kept for it alone (migration 0044).
  const due = await sql<{ org_id: string }[]>`
    select distinct org_id from holds where status = 'active' and org_id <> '' and expires_at <= ${now} limit ${maxOrgs}`;
  if (due.length === 0) return 0;
  const orgs = due
    .map((d) => d.org_id)
    .sort()
    .map((org_id) => ({ org_id, usage_txn: null, alert_id: null }));
  const res = await callMeteringBatch(sql, now, orgs, [], []);
  return res.expired_holds;
}

/**
 * 402 spend_limit_reached: a hard budget would be exceeded. `details.budget` (the budget, its limit,
 * the period's spend and what is held in its scope) is sent in the error envelope.
 */
function spendLimitReached(amount: bigint, d: BudgetRefusal): BillingError {
  const limit = BigInt(d.limit);
  const spent = BigInt(d.spent);
  const held = BigInt(d.held);
  const start = new Date(d.period_start);
  const end = new Date(Date.UTC(start.getUTCFullYear(), start.getUTCMonth() + 1, 1));
  const what =
    d.scope === "org" ? "the organization's" : d.scope === "project" ? `project ${d.target}'s` : `key ${d.target}'s`;
  return new BillingError(
    "spend_limit_reached",
    `this request needs ${formatUsd(amount)} USD but ${what} monthly budget of ${formatUsd(limit)} USD has ${formatUsd(spent)} USD spent and ${formatUsd(held)} USD held this period`,
    {
      details: {
        budget: {
          id: d.budget_id,
          scope: d.scope,
          target: d.target,
          limit,
          spent,
          held,
          period_start: start,
          period_end: end,
        },
      },
    },
  );
}

/** api_key_id named no key of the request's organization (another org's key, or none at all). */
export function unknownApiKey(apiKeyId: string | undefined, orgId: string): BillingError {
  return new BillingError("unknown_api_key", `no api key ${apiKeyId} for organization ${orgId}`, {
    details: { param: "api_key_id" },
  });
}
