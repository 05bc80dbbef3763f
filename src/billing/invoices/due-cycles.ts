import { BillingError } from "../../errors.js";
import type { BillingContext } from "../context.js";
import { cycleContaining, cycleFrom, type Period } from "../periods.js";

const MIN_EARLY_CYCLE_MS = 60_000;

export type DueCyclesInput = {
  orgId?: string;
  endCurrentNow?: boolean;
  /** The early end's idempotency key: once an invoice carries it, the request has ended its cycle. */
  requestKey?: string;
};

/**
 * Cycles that have ended without an invoice, oldest first, for one org or all, and whether the
 * request's key (requestKey) already ended a cycle early: a retry, which ends nothing more. A cycle starts
 * where the previous invoice ended (or at the org's anchored cycle start when it has none) and
 * runs to the next anchor date, so a cycle closed early ("now") is followed by a short one.
 */
export async function dueCycles(
  ctx: BillingContext,
  input: DueCyclesInput = {},
): Promise<{ cycles: { orgId: string; period: Period; requestKey?: string | undefined }[]; endedByKey: boolean }> {
  const { sql } = ctx;
  const now = ctx.clock();
  const orgs = await sql<
    { id: string; billing_anchor_day: number; created_at: Date; last_end: Date | null; ended_by_key: boolean }[]
  >`
    select o.id, o.billing_anchor_day, o.created_at, (select max(period_end) from invoices i where i.org_id = o.id) as last_end,
           ${input.requestKey ?? null}::text is not null
             and exists (select 1 from invoices i where i.org_id = o.id and i.request_key = ${input.requestKey ?? null}) as ended_by_key
    from organizations o ${input.orgId ? sql`where o.id = ${input.orgId}` : sql``}`;
  if (input.orgId && orgs.length === 0) throw new BillingError("not_found", `no organization ${input.orgId}`);
  const due: { orgId: string; period: Period; requestKey?: string | undefined }[] = [];
  let endedByKey = false;
  for (const o of orgs) {
    endedByKey ||= o.ended_by_key;
    const start = o.last_end ?? cycleContaining(o.created_at, o.billing_anchor_day).start;
    let p = cycleFrom(start, o.billing_anchor_day);
    while (p.end <= now) {
      due.push({ orgId: o.id, period: p });
      p = cycleFrom(p.end, o.billing_anchor_day);
    }
    // A cycle that began less than a minute ago is not ended again: racing or repeated
    // "end now" requests then yield one invoice instead of a trail of empty slivers.
    // Nor is it ended when this request's key already ended one (a retry): closeCycle checks the
    // key again under the org's lock.
    if (input.endCurrentNow && !o.ended_by_key && now.getTime() - p.start.getTime() >= MIN_EARLY_CYCLE_MS)
      due.push({ orgId: o.id, period: { ...p, end: now }, requestKey: input.requestKey });
  }
  return { cycles: due, endedByKey };
}

/**
 * When the org's running cycle may be ended early, if not yet: a cycle that began less than a
 * minute ago (the previous one was just closed) is not ended again (see dueCycles).
 */
export async function earlyEndNotBefore(ctx: BillingContext, input: { orgId: string }): Promise<Date | undefined> {
  const now = ctx.clock();
  const [o] = await ctx.sql<{ billing_anchor_day: number; created_at: Date; last_end: Date | null }[]>`
    select o.billing_anchor_day, o.created_at, (select max(period_end) from invoices i where i.org_id = o.id) as last_end
    from organizations o where o.id = ${input.orgId}`;
  if (!o) return undefined;
  let p = cycleFrom(o.last_end ?? cycleContaining(o.created_at, o.billing_anchor_day).start, o.billing_anchor_day);
  while (p.end <= now) p = cycleFrom(p.end, o.billing_anchor_day);
  const notBefore = new Date(p.start.getTime() + MIN_EARLY_CYCLE_MS);
  return notBefore > now ? notBefore : undefined;
}
