import { BillingError } from "../errors.js";
import { divideHalfEven, parseUsd } from "../ledger/money.js";
import type { Catalog, CatalogVersionFile } from "./catalog.js";
import { at, type BillingContext } from "./context.js";
import type { TransactionSql } from "../db/client.js";
import { grantCredits, grantLedgerKey, grantsAfterLiveHolds, PLAN_CREDITS_KEY_PREFIX, postGrantEnd } from "./grants.js";
import { cycleContaining } from "./periods.js";

export type Plan = { id: string; name: string; monthlyPrice: bigint; includedCredits: bigint; version: string };

type CatalogPlan = CatalogVersionFile["plans"][number];
const toPlan = (plan: CatalogPlan, version: string): Plan => ({
  id: plan.id,
  name: plan.name,
  monthlyPrice: parseUsd(plan.monthly_price),
  includedCredits: parseUsd(plan.included_credits),
  version,
});

/** The plan as priced by the catalog version in force at `at`: what a new subscription may choose. */
export function planAt(catalog: Catalog, planId: string, at: Date): Plan {
  const version = catalog.versionAt(at);
  const plan = version.document.plans.find((p) => p.id === planId);
  if (!plan)
    throw new BillingError("invalid_request", `unknown plan "${planId}"; see GET /v1/pricing/plans`, {
      details: { param: "plan_id" },
    });
  return toPlan(plan, version.version);
}

/**
 * The plan an existing subscription is charged for at `at`: as the newest version in force then
 * that lists it prices it. A version that drops a plan stops new subscriptions to it (planAt),
 * never the cycles of those who have it: they keep its last listed price. A plan first listed
 * after `at` (taken mid-cycle) is priced as first listed.
 */
export function subscribedPlanAt(catalog: Catalog, planId: string, at: Date): Plan {
  let found: { plan: CatalogPlan; version: string } | undefined;
  for (const v of catalog.allVersions()) {
    // oldest first
    const plan = v.document.plans.find((p) => p.id === planId);
    if (!plan) continue;
    if (v.effectiveAt <= at || !found) found = { plan, version: v.version };
    if (v.effectiveAt > at) break;
  }
  if (!found)
    throw new BillingError("invalid_request", `plan "${planId}" is in no catalog version`, {
      details: { param: "plan_id" },
    });
  return toPlan(found.plan, found.version);
}

/**
 * A plan's included credits for a cycle, expiring at its end; once per org and anchored month. A
 * full cycle's grant is keyed by the month's end (a second grant for it, under another plan, is
 * refused by that key). A short cycle, after an early close, may start under a new plan: it gets
 * that plan's share of the month for the cycle, less what the month's grants already gave, so an
 * upgrade comes with its credits and nothing is granted twice.
 */
export async function grantIncludedCredits(
  ctx: BillingContext,
  input: { orgId: string; plan: Plan; cycle: { start: Date; end: Date }; anchorDay: number },
): Promise<void> {
  const { orgId, plan, cycle } = input;
  const now = ctx.clock();
  if (plan.includedCredits <= 0n || cycle.end <= now) return;
  const short = cycle.start > cycleContaining(cycle.start, input.anchorDay).start;
  let amount = plan.includedCredits;
  const until = cycle.end.toISOString();
  const monthKey = `${PLAN_CREDITS_KEY_PREFIX}${until}`;
  if (short) {
    // The month's grants by their key (a full cycle's, and short cycles' `:<start>` after it), not
    // by expires_at: a grant ended early (endIncludedCredits) gave what was spent of it, not what
    // its end took back (expired_amount). While that end waits for a hold taken in the grant's
    // life, what the hold will surely draw on it counts as given too (grantsAfterLiveHolds).
    const month = await ctx.sql<
      { id: string; amount: bigint; expires_at: Date; expired_at: Date | null; expired_amount: bigint | null }[]
    >`
      select g.id, g.amount, g.expires_at, g.expired_at, g.expired_amount
      from credit_grants g join ledger_transactions t on t.id = g.transaction_id
      where g.org_id = ${orgId} and g.source = 'plan' and starts_with(t.idempotency_key, ${grantLedgerKey({ orgId, idempotencyKey: monthKey })})`;
    const ending = month.some((g) => g.expired_at === null && g.expires_at <= now);
    const { left } = ending ? await grantsAfterLiveHolds(ctx.sql, orgId, now) : { left: new Map<string, bigint>() };
    const given = month.reduce((sum, g) => {
      const amount = BigInt(g.amount);
      if (g.expired_at !== null) return sum + amount - BigInt(g.expired_amount ?? 0n);
      if (g.expires_at <= now) return sum + amount - (left.get(g.id) ?? 0n);
      return sum + amount;
    }, 0n);
    amount = proratedPrice(plan.includedCredits, cycle, input.anchorDay) - given;
    if (amount <= 0n) return;
  }
  try {
    await grantCredits(at(ctx, now), {
      orgId,
      amount,
      reason: `${plan.name} plan: included credits until ${until.slice(0, 10)}`,
      expiresAt: cycle.end,
      idempotencyKey: `${monthKey}${short ? `:${cycle.start.toISOString()}` : ""}`,
      source: "plan",
    });
  } catch (err) {
    // Already granted for this month (under another plan): once per month is the rule.
    if (!(err instanceof BillingError && err.code === "idempotency_key_reused")) throw err;
  }
}

/** A plan's monthly amount for a cycle shorter than its anchored month, by time, rounded half to even. */
export function proratedPrice(monthly: bigint, period: { start: Date; end: Date }, anchor: number): bigint {
  const full = cycleContaining(period.start, anchor);
  const fullMs = BigInt(full.end.getTime() - full.start.getTime());
  const ms = BigInt(period.end.getTime() - period.start.getTime());
  if (ms >= fullMs) return monthly;
  return divideHalfEven(monthly * ms, fullMs);
}

/**
 * Ends now the included credits of a plan the org leaves mid-cycle (moved to the free plan after
 * its renewal failed): what is unused of them leaves its credits as a grant expiry, as it would
 * have at the cycle's end, so the cycle, no longer charged the plan, does not keep its credits.
 * What was spent of them before stays spent. Call under the org's lock.
 */
export async function endIncludedCredits(tx: TransactionSql, orgId: string, now: Date): Promise<void> {
  const ended = await tx<{ id: string }[]>`
    update credit_grants set expires_at = ${now}
    where org_id = ${orgId} and source = 'plan' and expired_at is null and expires_at > ${now}
    returning id`;
  // A live hold taken while a grant was live makes its end wait; the expire-grants job posts it.
  for (const g of ended) await postGrantEnd(tx, g.id, now);
}
