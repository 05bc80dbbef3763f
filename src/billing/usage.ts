import { BillingError } from "../errors.js";
import { newId } from "../ids.js";
import { unknownApiKey } from "./holds.js";
import type { BillingContext } from "./context.js";
import {
  at,
  batchOrgs,
  callMeteringBatch,
  countsObject,
  firstWithSameValue,
  previousWithSameKey,
  type BatchUsage,
} from "./group-commit.js";

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
  /** The org's key the gateway served (attribution); must be a key of orgId. */
  apiKeyId?: string | undefined;
  /** The customer's project label (attribution). */
  project?: string | undefined;
};

export type UsageResult = {
  usageId: string;
  idempotencyKey: string;
  cost: bigint;
  catalogVersion: string;
  holdId: string | null;
  /**
   * What happened to the hold: settled by this event, or already closed: settled by an earlier
   * event, or expired (its amount returned to the credits), and the cost is charged in full.
   */
  holdOutcome: "settled" | "already_closed" | null;
  replayed: boolean;
};

export type LowBalanceCrossing = { alertId: string; orgId: string; balance: bigint; threshold: bigint };

type UsageOutcome =
  | "recorded"
  | "settled"
  | "already_closed"
  | "duplicate"
  | "idempotency_key_reused"
  | "unknown_organization"
  | "hold_not_found"
  | "unknown_api_key"
  | "debt_limit_exceeded";
/** What metering_batch (src/db/functions/metering.sql) answers for the usage events; amounts in the JSON parts are strings. */
export type UsageAnswer = {
  outcomes: UsageOutcome[];
  duplicates: { k: number; id: string; cost: string; catalog_version: string; hold_id: string | null }[] | null;
  alerts: { i: number; balance: string; threshold: string }[] | null;
};

/**
 * A batch's usage events as metering_batch's input (src/db/functions/metering.sql, which holds
 * the money rules). `orgIndex` points each event at its organization in the batch (1-based).
 */
export type PreparedUsage = ReturnType<typeof prepareUsage>;

export function prepareUsage(requests: UsageRequest[], orgIndex: number[]) {
  const usageIds = requests.map(() => newId("use"));
  const previous = previousWithSameKey(
    requests.map((r) => r.idempotencyKey),
    orgIndex,
  );
  const holdFirst = firstWithSameValue(requests.map((r) => r.holdId));
  return {
    requests,
    usageIds,
    input: requests.map(
      (r, k): BatchUsage => ({
        org: at(orgIndex, k, "organization index"),
        id: at(usageIds, k, "usage id"),
        key: r.idempotencyKey,
        prev: at(previous, k, "previous-key index"),
        occurred_at: r.occurredAt.toISOString(),
        product: r.product,
        model: r.model ?? "",
        quantities: countsObject(r.quantities),
        cost: r.cost.toString(),
        catalog_version: r.catalogVersion,
        hold_id: r.holdId ?? null,
        hold_first: at(holdFirst, k, "first-hold index"),
        ...(r.apiKeyId !== undefined ? { api_key_id: r.apiKeyId } : {}),
        ...(r.project !== undefined ? { project: r.project } : {}),
      }),
    ),
  };
}

/**
 * Turns metering_batch's answer for the usage events into one result or error per event, and
 * the threshold crossings (`orgs` and `alertIds` are the batch's p_orgs and p_alert_ids).
 */
export function usageOutcomes(
  u: PreparedUsage,
  res: UsageAnswer,
  orgs: string[],
  alertIds: (string | null)[],
): { outcomes: (UsageResult | BillingError)[]; crossings: LowBalanceCrossing[] } {
  const duplicates = new Map((res.duplicates ?? []).map((d) => [d.k - 1, d]));
  const outcomes = u.requests.map((r, k): UsageResult | BillingError => {
    const outcome = res.outcomes[k];
    switch (outcome) {
      case "recorded":
      case "settled":
      case "already_closed":
        return {
          usageId: at(u.usageIds, k, "usage id"),
          idempotencyKey: r.idempotencyKey,
          cost: r.cost,
          catalogVersion: r.catalogVersion,
          holdId: r.holdId ?? null,
          holdOutcome: outcome === "recorded" ? null : outcome,
          replayed: false,
        };
      case "duplicate": {
        const first = duplicates.get(k);
        if (!first) throw new Error(`metering_batch reported item ${k} a duplicate without its first record`);
        return {
          usageId: first.id,
          idempotencyKey: r.idempotencyKey,
          cost: BigInt(first.cost),
          catalogVersion: first.catalog_version,
          holdId: first.hold_id,
          holdOutcome: null,
          replayed: true,
        };
      }
      case "idempotency_key_reused":
        return new BillingError(
          "idempotency_key_reused",
          "this idempotency key was already used for a usage event with another timestamp, product, model, quantities or hold",
          {
            details: { param: "idempotency_key" },
          },
        );
      case "unknown_organization":
        return new BillingError("unknown_organization", `no organization ${r.orgId}`, { details: { param: "org_id" } });
      case "debt_limit_exceeded":
        return new BillingError(
          "debt_limit_exceeded",
          "this usage would take the organization's credits below -1000000000 USD; it was not recorded",
          {
            details: { param: "quantities" },
          },
        );
      case "unknown_api_key":
        return unknownApiKey(r.apiKeyId, r.orgId);
      case "hold_not_found":
        return new BillingError("hold_not_found", `no hold ${r.holdId} for organization ${r.orgId}`, {
          details: { param: "hold_id" },
        });
      default:
        throw new Error(`metering_batch returned no outcome for usage event ${k}`);
    }
  });
  const crossings = (res.alerts ?? []).map((a): LowBalanceCrossing => {
    const alertId = alertIds[a.i - 1];
    if (!alertId) throw new Error(`metering_batch reported a low-balance crossing for org ${a.i} without an alert id`);
    return {
      alertId,
      orgId: at(orgs, a.i - 1, "organization"),
      balance: BigInt(a.balance),
      threshold: BigInt(a.threshold),
    };
  });
  return { outcomes, crossings };
}

/**
 * Records a batch of usage events outside the API's group commit (seeding, tools): the same
 * metering_batch call, with no authorizations.
 */
export async function recordUsageBatch(
  ctx: BillingContext,
  input: { requests: UsageRequest[] },
): Promise<{ outcomes: (UsageResult | BillingError)[]; crossings: LowBalanceCrossing[] }> {
  const { requests } = input;
  const { orgs, index } = batchOrgs(requests.map((r) => r.orgId));
  const u = prepareUsage(requests, index);
  const alertIds = orgs.map(() => newId("alert"));
  const usageTxn = newId("txn"); // one 'usage' transaction for the batch (metering_post)
  const batch = orgs.map((org_id, i) => ({
    org_id,
    usage_txn: usageTxn,
    alert_id: alertIds[i] ?? null,
  }));
  const res = await callMeteringBatch(ctx.sql, ctx.clock(), batch, u.input, []);
  return usageOutcomes(
    u,
    {
      outcomes: (res.usage_outcomes ?? []) as UsageAnswer["outcomes"],
      duplicates: res.usage_duplicates as UsageAnswer["duplicates"],
      alerts: res.usage_alerts as UsageAnswer["alerts"],
    },
    orgs,
    alertIds,
  );
}
