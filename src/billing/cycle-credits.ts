import type { Sql, TransactionSql } from "../db/client.js";
import { type BillingContext, withTransaction } from "./context.js";
import { lockOrgs } from "./org-locks.js";
import { cycleContaining } from "./periods.js";
import { grantIncludedCredits, subscribedPlanAt } from "./plans.js";

type OrgCycleRow = {
  id: string;
  billing_anchor_day: number;
  plan_id: string | null;
  pending_plan_id: string | null;
  started_at: Date | null;
  canceled_at: Date | null;
  last_end: Date | null;
};

/**
 * A cycle's included credits from its first instant, not from its close: the previous cycle's
 * close grants them, but the workers close due cycles up to a minute after the boundary (longer
 * if they are down), and usage in between was paid from the org's own credits (then the included
 * credits expired with that much unused) or refused if it had none. The metering path calls this
 * before it writes an organization's first request of a cycle (Metering keeps when to ask again):
 * if the previous cycle is not closed yet, the cycle's credits are granted now, for the plan the
 * close would give it (the pending change, if any; none once cancelled), under the same key as
 * the close's grant, so whichever comes first grants them and the other finds them. Returns, per
 * organization, when its current cycle ends (when to ask again).
 */
export async function grantOpenCycleCredits(
  ctx: BillingContext,
  orgIds: string[],
  now: Date,
): Promise<Map<string, Date>> {
  const ends = new Map<string, Date>();
  let catalogRead = false;
  for (const r of await orgCycles(ctx.sql, orgIds)) {
    ends.set(r.id, cycleContaining(now, r.billing_anchor_day).end);
    if (!openCycleNeedsCredits(r, now)) continue;
    if (!catalogRead) await ctx.catalog.refresh();
    catalogRead = true;
    // Decided again under the org's lock, which every change of its subscription and every close
    // holds: read before it, a cancel or change dated at the month's last instant that committed
    // meanwhile was missed, and the month got the old plan's credits with the new plan's charge.
    await withTransaction({ ...ctx, clock: () => now }, async (txc) => {
      await lockOrgs(txc.sql, [r.id], now);
      const [locked] = await orgCycles(txc.sql, [r.id]);
      if (!locked || !openCycleNeedsCredits(locked, now)) return;
      const cycle = cycleContaining(now, locked.billing_anchor_day);
      const plan = subscribedPlanAt(ctx.catalog, locked.pending_plan_id ?? locked.plan_id ?? "", cycle.start);
      await grantIncludedCredits(txc, { orgId: r.id, plan, cycle, anchorDay: locked.billing_anchor_day });
    });
  }
  return ends;
}

function orgCycles(sql: Sql | TransactionSql, orgIds: string[]) {
  return sql<OrgCycleRow[]>`
    select o.id, o.billing_anchor_day, s.plan_id, s.pending_plan_id, s.started_at, s.canceled_at,
           (select max(i.period_end) from invoices i where i.org_id = o.id) as last_end
    from organizations o left join subscriptions s on s.org_id = o.id
    where o.id = any(${orgIds})`;
}

/**
 * The cycle running at `now` has no included credits yet and its previous one is not closed: a
 * subscription taken in this cycle got its credits when it was taken (its pending change waits for
 * the next cycle); one cancelled gets none.
 */
function openCycleNeedsCredits(r: OrgCycleRow, now: Date): boolean {
  const cycle = cycleContaining(now, r.billing_anchor_day);
  const previousOpen = r.last_end === null || r.last_end < cycle.start;
  const subscribedBefore = r.started_at !== null && r.started_at < cycle.start;
  return previousOpen && subscribedBefore && r.plan_id !== null && r.canceled_at === null;
}
