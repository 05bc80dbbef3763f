import { BillingError } from "../errors.js";
import { at, withTransaction, type BillingContext } from "./context.js";
import { closeEndedCycles } from "./invoices/close-due-cycles.js";
import { getOrganization } from "./organizations.js";
import { cycleContaining } from "./periods.js";
import { grantIncludedCredits, planAt } from "./plans.js";

export type Subscription = {
  orgId: string;
  planId: string;
  pendingPlanId: string | null;
  startedAt: Date;
  canceledAt: Date | null;
};

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
 *
 * Every cycle of the org that has ended is closed first (closeEndedCycles), so a change made
 * just after a cycle's end, before the workers closed it, never reaches back into it.
 */
export async function subscribe(ctx: BillingContext, input: { orgId: string; planId: string }): Promise<Subscription> {
  const { orgId, planId } = input;
  const now = ctx.clock();
  await ctx.catalog.refresh();
  const plan = planAt(ctx.catalog, planId, now);
  const org = await getOrganization(ctx, { id: orgId });
  const cycle = cycleContaining(now, org.billingAnchorDay);
  await closeEndedCycles(at(ctx, now), { orgId });
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
      await grantIncludedCredits(txc, { orgId, plan, cycle, anchorDay: org.billingAnchorDay });
    } else {
      [row] = await tx<SubscriptionRow[]>`
        update subscriptions set canceled_at = null, pending_plan_id = ${existing.plan_id === planId ? null : planId}
        where org_id = ${orgId} returning *`;
    }
    if (!row) throw new Error(`the subscription of ${orgId} vanished under its lock`);
    return toSubscription(row);
  });
}

/** Ends the subscription now: the running cycle is still charged (in arrears); ended cycles are closed first, as for subscribe. */
export async function cancelSubscription(ctx: BillingContext, input: { orgId: string }): Promise<Subscription> {
  const { orgId } = input;
  const now = ctx.clock();
  await ctx.catalog.refresh();
  await closeEndedCycles(at(ctx, now), { orgId });
  const [row] = await ctx.sql<SubscriptionRow[]>`
    update subscriptions set canceled_at = coalesce(canceled_at, ${now}), pending_plan_id = null where org_id = ${orgId} returning *`;
  if (!row) throw new BillingError("not_found", `organization ${orgId} has no subscription`);
  return toSubscription(row);
}
