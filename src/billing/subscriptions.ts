import { BillingError } from "../errors.js";
import { at, withTransaction, type BillingContext, type TransactionContext } from "./context.js";
import { closeEndedCycles } from "./invoices/close-due-cycles.js";
import { lockOrgs } from "./org-locks.js";
import { getOrganization } from "./organizations.js";
import { cycleContaining, cycleFrom, type Period } from "./periods.js";
import { grantIncludedCredits, planAt, subscribedPlanAt } from "./plans.js";

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
 * included credits for the current cycle (its share of the month, if an early close made the
 * cycle short). A change of plan takes effect at the next cycle: the current cycle has already
 * received its plan's credits, so it is charged for that plan (otherwise a customer could take a
 * big plan's credits and switch to a free plan before close). Plans are charged in arrears at
 * cycle close, with the credits of the catalog version that prices the charge. Included credits
 * are granted once per anchored month, whatever happens to the plan within it.
 *
 * Runs as atOrgTime says: after the org's ended cycles are closed, under its lock, never dated
 * before what was already decided for it.
 */
export async function subscribe(ctx: BillingContext, input: { orgId: string; planId: string }): Promise<Subscription> {
  const { orgId, planId } = input;
  await ctx.catalog.refresh();
  planAt(ctx.catalog, planId, ctx.clock()); // offered now: the catalog in force lists it
  const org = await getOrganization(ctx, { id: orgId });
  const anchorDay = org.billingAnchorDay;
  return atOrgTime(ctx, orgId, anchorDay, async (txc, now, decided) => {
    const tx = txc.sql;
    const cycle = currentCycle(now, anchorDay, decided.invoicedThrough);
    const [existing] = await tx<SubscriptionRow[]>`select * from subscriptions where org_id = ${orgId} for update`;
    const endedBeforeThisCycle = existing?.canceled_at != null && existing.canceled_at <= cycle.start;
    let row: SubscriptionRow | undefined;
    if (!existing || endedBeforeThisCycle) {
      [row] = await tx<SubscriptionRow[]>`
        insert into subscriptions (org_id, plan_id, started_at) values (${orgId}, ${planId}, ${now})
        on conflict (org_id) do update set plan_id = excluded.plan_id, pending_plan_id = null, canceled_at = null, started_at = excluded.started_at
        returning *`;
      // The plan as the close will charge it for this cycle (subscribedPlanAt), so credits and price agree.
      const plan = subscribedPlanAt(ctx.catalog, planId, cycle.start);
      await grantIncludedCredits(txc, { orgId, plan, cycle, anchorDay });
    } else {
      [row] = await tx<SubscriptionRow[]>`
        update subscriptions set canceled_at = null, pending_plan_id = ${existing.plan_id === planId ? null : planId}
        where org_id = ${orgId} returning *`;
    }
    if (!row) throw new Error(`the subscription of ${orgId} vanished under its lock`);
    return toSubscription(row);
  });
}

/**
 * Ends the subscription now: the running cycle is still charged (in arrears). Runs as atOrgTime
 * says, as subscribe does. A cancel at a cycle's very first instant counts from the instant after:
 * the cycle had begun (its included credits were granted, and may have been spent at that instant),
 * so it is charged, as for a cancel a moment later.
 */
export async function cancelSubscription(ctx: BillingContext, input: { orgId: string }): Promise<Subscription> {
  const { orgId } = input;
  await ctx.catalog.refresh();
  const org = await getOrganization(ctx, { id: orgId });
  return atOrgTime(ctx, orgId, org.billingAnchorDay, async (txc, now, decided) => {
    const canceledAt = cancelInstant(now, org.billingAnchorDay, decided);
    const [row] = await txc.sql<SubscriptionRow[]>`
      update subscriptions set canceled_at = coalesce(canceled_at, ${canceledAt}), pending_plan_id = null where org_id = ${orgId} returning *`;
    if (!row) throw new BillingError("not_found", `organization ${orgId} has no subscription`);
    return toSubscription(row);
  });
}

/**
 * When a cancel at `now` takes effect: at a cycle's very first instant, the instant after (the
 * cycle had begun, its credits were granted and may have been spent), so the cycle is charged.
 */
export function cancelInstant(now: Date, anchorDay: number, decided: Decided): Date {
  const cycle = currentCycle(now, anchorDay, decided.invoicedThrough);
  return now.getTime() === cycle.start.getTime() ? new Date(now.getTime() + 1) : now;
}

/** How far an organization's cycles are decided: see decidedFor. */
export type Decided = { invoicedThrough: Date | null; through: Date | null };

/**
 * How far the org's cycles are decided: the end of its last invoiced cycle, and the start of the
 * latest month whose included credits were granted (metering grants them at the month's first
 * request, before the close). `through` is the latest of those and of the org's creation: an org
 * made by a process whose clock was ahead has no cycle before it (its first cycle is the one it
 * was created in), so a change dated earlier would start a plan in a month never invoiced.
 */
async function decidedFor(ctx: BillingContext, orgId: string, anchorDay: number): Promise<Decided> {
  const [row] = await ctx.sql<{ invoiced: Date | null; credited: Date | null; created: Date | null }[]>`
    select (select max(period_end) from invoices where org_id = ${orgId}) as invoiced,
           (select max(expires_at) from credit_grants where org_id = ${orgId} and source = 'plan') as credited,
           (select created_at from organizations where id = ${orgId}) as created`;
  const invoiced = row?.invoiced ?? null;
  const credited = row?.credited ? cycleContaining(new Date(row.credited.getTime() - 1), anchorDay).start : null;
  return { invoicedThrough: invoiced, through: later(later(invoiced, credited), row?.created ?? null) };
}

/** The later of two instants; null when neither is known. */
function later(a: Date | null, b: Date | null): Date | null {
  if (!a || !b) return a ?? b;
  return a > b ? a : b;
}

/**
 * Runs a change of the org's subscription at the instant it takes effect, so that it never
 * reaches back into a cycle already charged or credited:
 * - every cycle of the org that has ended by then is closed first (a change made just after a
 *   cycle's end, before the workers closed it, would otherwise change that cycle's bill);
 * - the change holds the org's lock, which every close and every grant of included credits takes,
 *   so two changes, or a change and a close, never interleave (two first subscriptions at once
 *   charged one plan and granted the other's credits);
 * - it is dated no earlier than what is already decided for the org (decidedFor): a process whose
 *   clock reads just before a boundary, after another process closed the cycle or granted the
 *   next one's credits, makes its change at that boundary instead.
 */
export async function atOrgTime<T>(
  ctx: BillingContext,
  orgId: string,
  anchorDay: number,
  change: (txc: TransactionContext, now: Date, decided: Decided) => Promise<T>,
): Promise<T> {
  const asked = ctx.clock();
  let now = later(asked, (await decidedFor(ctx, orgId, anchorDay)).through) ?? asked;
  for (;;) {
    await closeEndedCycles(at(ctx, now), { orgId });
    const done = await withTransaction(at(ctx, now), async (txc): Promise<{ value: T } | { again: Date }> => {
      await lockOrgs(txc.sql, [orgId], now);
      const decided = await decidedFor(txc, orgId, anchorDay);
      // Decided further meanwhile (by a close or a grant that had the lock first): again, from there.
      if (decided.through && decided.through > now) return { again: decided.through };
      return { value: await change(txc, now, decided) };
    });
    if ("value" in done) return done.value;
    now = done.again;
  }
}

/** The org's running cycle at `now`: from the end of its last invoice if an early close ended one within this month. */
function currentCycle(now: Date, anchorDay: number, invoicedThrough: Date | null): Period {
  const anchored = cycleContaining(now, anchorDay);
  return invoicedThrough && invoicedThrough > anchored.start ? cycleFrom(invoicedThrough, anchorDay) : anchored;
}
