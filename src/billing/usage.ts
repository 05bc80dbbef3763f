import { BillingError } from "../errors.js";
import { newId } from "../ids.js";
import type { Sql } from "../db/client.js";
import { batchOrgs, callMeteringBatch, countsJson, firstWithSameValue, pgArray, previousWithSameKey, type UsageParams } from "./group-commit.js";

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

type UsageOutcome = "recorded" | "released" | "already_closed" | "duplicate" | "unknown_organization" | "hold_not_found";
/** What metering_batch (migration 0010) answers for the usage events; amounts in the JSON parts are strings. */
export type UsageAnswer = {
  outcomes: UsageOutcome[];
  duplicates: { k: number; id: string; cost: string; catalog_version: string; hold_id: string | null }[] | null;
  alerts: { i: number; balance: string; threshold: string }[] | null;
};

/**
 * A batch's usage events as metering_batch's u_* arrays (migration 0010, which holds the money
 * rules: see there and src/billing/metering.ts). `orgIndex` points each event at its
 * organization in the batch's p_orgs (1-based).
 */
export type PreparedUsage = ReturnType<typeof prepareUsage>;

export function prepareUsage(requests: UsageRequest[], orgIndex: number[]) {
  const usageIds = requests.map(() => newId("use"));
  const holdIds = requests.map((r) => r.holdId);
  const keys = requests.map((r) => r.idempotencyKey);
  return {
    requests,
    usageIds,
    params: {
      orgIndex: pgArray(orgIndex),
      usageIds: pgArray(usageIds),
      keys: pgArray(keys),
      previous: pgArray(previousWithSameKey(keys, orgIndex)),
      occurredAt: pgArray(requests.map((r) => r.occurredAt.toISOString())),
      products: pgArray(requests.map((r) => r.product)),
      models: pgArray(requests.map((r) => r.model ?? "")),
      quantities: pgArray(requests.map((r) => countsJson(r.quantities))),
      costs: pgArray(requests.map((r) => r.cost)),
      versions: pgArray(requests.map((r) => r.catalogVersion)),
      holdIds: pgArray(holdIds),
      holdFirst: pgArray(firstWithSameValue(holdIds)),
    } satisfies UsageParams,
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
      case "released":
      case "already_closed":
        return {
          usageId: u.usageIds[k]!,
          idempotencyKey: r.idempotencyKey,
          cost: r.cost,
          catalogVersion: r.catalogVersion,
          holdId: r.holdId ?? null,
          holdOutcome: outcome === "recorded" ? null : outcome,
          replayed: false,
        };
      case "duplicate": {
        const first = duplicates.get(k)!;
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
      case "unknown_organization":
        return new BillingError("unknown_organization", `no organization ${r.orgId}`, { details: { param: "org_id" } });
      case "hold_not_found":
        return new BillingError("hold_not_found", `no hold ${r.holdId} for organization ${r.orgId}`, { details: { param: "hold_id" } });
      default:
        throw new Error(`metering_batch returned no outcome for usage event ${k}`);
    }
  });
  const crossings = (res.alerts ?? []).map(
    (a): LowBalanceCrossing => ({ alertId: alertIds[a.i - 1]!, orgId: orgs[a.i - 1]!, balance: BigInt(a.balance), threshold: BigInt(a.threshold) }),
  );
  return { outcomes, crossings };
}

/**
 * Records a batch of usage events outside the API's group commit (seeding, tools): the same
 * metering_batch call, with no authorizations.
 */
export async function recordUsageBatch(
  sql: Sql,
  requests: UsageRequest[],
  now: Date,
): Promise<{ outcomes: (UsageResult | BillingError)[]; crossings: LowBalanceCrossing[] }> {
  const { orgs, index } = batchOrgs(requests.map((r) => r.orgId));
  const u = prepareUsage(requests, index);
  const alertIds = orgs.map(() => newId("alert"));
  const none = pgArray(orgs.map(() => null));
  const res = await callMeteringBatch(
    sql,
    now,
    { orgs: pgArray(orgs), usageTxns: pgArray(orgs.map(() => newId("txn"))), releaseTxns: none, holdTxns: none, alertIds: pgArray(alertIds) },
    u.params,
    null,
  );
  return usageOutcomes(
    u,
    { outcomes: (res.usage_outcomes ?? []) as UsageAnswer["outcomes"], duplicates: res.usage_duplicates as UsageAnswer["duplicates"], alerts: res.usage_alerts as UsageAnswer["alerts"] },
    orgs,
    alertIds,
  );
}
