import { BillingError } from "../errors.js";
import type { Catalog, CatalogVersionFile } from "./catalog.js";
import { at, withTransaction, type BillingContext } from "./context.js";
import { grantCredits } from "./grants.js";
import { getOrganization } from "./organizations.js";
import { cycleContaining } from "./periods.js";
import { parseUsd } from "../ledger/money.js";

export type Subscription = {
  orgId: string;
  planId: string;
  pendingPlanId: string | null;
  startedAt: Date;
  canceledAt: Date | null;
};
export type Plan = { id: string; name: string; monthlyPrice: bigint; includedCredits: bigint; version: string };

type SubscriptionRow = {
  org_id: string;
  plan_id: string;
  pending_plan_id: string | null;
  started_at: Date;
  canceled_at: Date | null;
};
const toSubscription = (r: SubscriptionRow): Subscription => ({
  orgId: r.org_id,
  planId: r.plan_id,
  pendingPlanId: r.pending_plan_id,
  startedAt: r.started_at,
  canceledAt: r.canceled_at,
});

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

export async function getSubscription(ctx: BillingContext, input: { orgId: string }): Promise<Subscription | null> {
  const [row] = await ctx.sql<SubscriptionRow[]>`select * from subscriptions where org_id = ${input.orgId}`;
  return row ? toSubscription(row) : null;
}

/**
 * Subscribes an organization to a plan. A new subscription starts now and receives the plan's
 * included credits for the current cycle. A change of plan takes effect at the next cycle: the
 * current cycle has already received its plan's credits, so it is charged for that plan
 * (otherwise a customer could take a big plan's credits and switch to a free plan before close).
 * Plans are charged in arrears at cycle close. Included credits are granted once per anchored
 * month, whatever happens to the plan within it.
 */
export async function subscribe(ctx: BillingContext, input: { orgId: string; planId: string }): Promise<Subscription> {
  const { orgId, planId } = input;
  const now = ctx.clock();
  await ctx.catalog.refresh();
  const plan = planAt(ctx.catalog, planId, now);
  const org = await getOrganization(ctx, { id: orgId });
  const cycle = cycleContaining(now, org.billingAnchorDay);
  return withTransaction(at(ctx, now), async (txc) => {
    const tx = txc.sql;
    const [existing] = await tx<SubscriptionRow[]>`select * from subscriptions where org_id = ${orgId} for update`;
    const endedBeforeThisCycle = existing?.canceled_at != null && existing.canceled_at <= cycle.start;
    let row: SubscriptionRow | undefined;
    if (!existing || endedBeforeThisCycle) {
      [row] = await tx<SubscriptionRow[]>`
        insert into subscriptions (org_id, plan_id, started_at) values (${orgId}, ${planId}, ${now})
        on conflict (org_id) do update set plan_id = excluded.plan_id, pending_plan_id = null, canceled_at = null, started_at = excluded.started_at
        returning *`;
      await grantIncludedCredits(txc, { orgId, plan, cycle });
    } else {
      [row] = await tx<SubscriptionRow[]>`
        update subscriptions set canceled_at = null, pending_plan_id = ${existing.plan_id === planId ? null : planId}
        where org_id = ${orgId} returning *`;
    }
    if (!row) throw new Error(`the subscription of ${orgId} vanished under its lock`);
    return toSubscription(row);
  });
}

export async function cancelSubscription(ctx: BillingContext, input: { orgId: string }): Promise<Subscription> {
  const { orgId } = input;
  const now = ctx.clock();
  const [row] = await ctx.sql<SubscriptionRow[]>`
    update subscriptions set canceled_at = coalesce(canceled_at, ${now}), pending_plan_id = null where org_id = ${orgId} returning *`;
  if (!row) throw new BillingError("not_found", `organization ${orgId} has no subscription`);
  return toSubscription(row);
}

/** Included credits for the anchored month containing `cycle`, expiring at its end; once per org and month. */
export async function grantIncludedCredits(
  ctx: BillingContext,
  input: { orgId: string; plan: Plan; cycle: { start: Date; end: Date } },
): Promise<void> {
  const { orgId, plan, cycle } = input;
  const now = ctx.clock();
  if (plan.includedCredits <= 0n || cycle.end <= now) return;
  try {
    await grantCredits(at(ctx, now), {
      orgId,
      amount: plan.includedCredits,
      reason: `${plan.name} plan: included credits until ${cycle.end.toISOString().slice(0, 10)}`,
      expiresAt: cycle.end,
      idempotencyKey: `plan-credits:${cycle.end.toISOString()}`,
      source: "plan",
    });
  } catch (err) {
    // Already granted for this month (under another plan): once per month is the rule.
    if (!(err instanceof BillingError && err.code === "idempotency_key_reused")) throw err;
  }
}
