import { BillingError } from "../errors.js";
import { divideHalfEven, parseUsd } from "../ledger/money.js";
import type { Catalog, CatalogVersionFile } from "./catalog.js";
import { at, type BillingContext } from "./context.js";
import type { Sql, TransactionSql } from "../db/client.js";
import { grantCredits, grantLedgerKey, PLAN_CREDITS_KEY_PREFIX, postGrantEnd } from "./grants.js";
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
  if (short) {
    // The month's grants by their key (a full cycle's, and short cycles' `:<start>` after it), not
    // by expires_at: a grant ended early (endIncludedCredits) gave what was spent of it, not what
    // its end took back (expired_amount). While that end waits for a live hold, what the hold will
    // draw on it is not known (a settle may cost more than its estimate): it counts in full, and an
    // early end is refused then (monthPlanCreditsWaitOnHold), so this is for safety only.
    const [month] = await ctx.sql<{ given: string }[]>`
      select coalesce(sum(case when g.expired_at is not null then g.amount - coalesce(g.expired_amount, 0)
                               when g.expires_at > ${now} then g.amount
                               when grant_expiry_waits(g.org_id, g.created_at, g.expires_at, ${now}) then g.amount
                               else g.consumed end), 0)::text as given
      from credit_grants g join ledger_transactions t on t.id = g.transaction_id
      where g.org_id = ${orgId} and g.source = 'plan' and starts_with(t.idempotency_key, ${monthGrantsKey(orgId, cycle.end)})`;
    const given = BigInt(month?.given ?? 0);
    amount = proratedPrice(plan.includedCredits, cycle, input.anchorDay) - given;
    if (amount <= 0n) return;
  }
  try {
    await grantCredits(at(ctx, now), {
      orgId,
      amount,
      reason: `${plan.name} plan: included credits until ${until.slice(0, 10)}`,
      expiresAt: cycle.end,
      idempotencyKey: `${PLAN_CREDITS_KEY_PREFIX}${until}${short ? `:${cycle.start.toISOString()}` : ""}`,
      source: "plan",
    });
  } catch (err) {
    // Already granted for this month (under another plan): once per month is the rule.
    if (!(err instanceof BillingError && err.code === "idempotency_key_reused")) throw err;
  }
}

/** The ledger key prefix of an org's plan grants for the anchored month that ends at `monthEnd`. */
const monthGrantsKey = (orgId: string, monthEnd: Date) =>
  grantLedgerKey({ orgId, idempotencyKey: `${PLAN_CREDITS_KEY_PREFIX}${monthEnd.toISOString()}` });

/**
 * Whether a plan grant of the month that ends at `monthEnd` was ended early (a failed renewal) and
 * its end still waits for a live hold taken while it was live. Until that hold settles or lapses
 * what the grant gives is not known, so a short cycle's credits cannot be sized: an early end is
 * refused meanwhile (at most the hold's time to live).
 */
export async function monthPlanCreditsWaitOnHold(
  sql: Sql | TransactionSql,
  orgId: string,
  monthEnd: Date,
  now: Date,
): Promise<boolean> {
  const [row] = await sql<{ waits: boolean }[]>`
    select exists (
      select 1 from credit_grants g join ledger_transactions t on t.id = g.transaction_id
      where g.org_id = ${orgId} and g.source = 'plan' and g.expired_at is null and g.expires_at <= ${now}
        and starts_with(t.idempotency_key, ${monthGrantsKey(orgId, monthEnd)})
        and grant_expiry_waits(g.org_id, g.created_at, g.expires_at, ${now})) as waits`;
  return row?.waits ?? false;
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
