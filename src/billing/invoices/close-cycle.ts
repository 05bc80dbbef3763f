import type { TransactionSql } from "../../db/client.js";
import { BillingError } from "../../errors.js";
import { newId } from "../../ids.js";
import { orgCreditsAccount, SystemAccounts } from "../../ledger/accounts.js";
import { postTransfer } from "../../ledger/post-transaction.js";
import { at, withTransaction, type BillingContext } from "../context.js";
import { billingDetailsSnapshot } from "../documents/billing-details.js";
import { consumeExpiringGrants, grantsAfterLiveHolds } from "../grants.js";
import { watchLowBalance } from "../low-balance.js";
import { settleCharges, spendable } from "../money-rules.js";
import { lockOrgs } from "../org-locks.js";
import type { Catalog } from "../catalog.js";
import { cycleContaining, cycleFrom, type Period } from "../periods.js";
import {
  grantIncludedCredits,
  monthPlanCreditsWaitOnHold,
  type Plan,
  proratedPrice,
  subscribedPlanAt,
} from "../plans.js";
import { toInvoice, type Invoice, type InvoiceLine, type InvoiceRow, type InvoiceStatus } from "./invoice.js";
import { addUsageTotals, previousInvoice, usageTotals } from "./usage-totals.js";

/**
 * Closes one organization's cycle: one invoice per org and period, whoever calls and however
 * often. It rolls up every usage event not invoiced before, charges the plan in arrears, applies
 * queued adjustments, settles what it can from credits, and issues the invoice, all in one
 * transaction. The org's usage history is read before the org's lock (the one every usage write
 * takes); under the lock it reads only the events written meanwhile, then writes: metering
 * never waits on the long read.
 */
export async function closeCycle(
  ctx: BillingContext,
  input: {
    orgId: string;
    period: Period;
    /** The idempotency key of the request that ends this cycle early; its invoice keeps it. */
    requestKey?: string | undefined;
  },
): Promise<{ invoice: Invoice; created: boolean }> {
  const { orgId, period } = input;
  const now = ctx.clock();
  if (period.end > now)
    throw new BillingError("invalid_request", `the cycle ending ${period.end.toISOString()} has not ended yet`);
  // Every step of the close, nested verbs included, happens at this one instant.
  return withTransaction(at(ctx, now), async (txc) => {
    const tx = txc.sql;
    // Unlocked: the history up to the newest event this read sees (`upto`, see usageTotals).
    const unlockedPrevious = await previousInvoice(tx, orgId, period);
    const early = await usageTotals(tx, orgId, period, unlockedPrevious, 0n);

    const orgs = await lockOrgs(tx, [orgId], now);
    const org = orgs.get(orgId);
    if (!org) throw new BillingError("not_found", `no organization ${orgId}`);
    const [existing] = await tx<
      InvoiceRow[]
    >`select * from invoices where org_id = ${orgId} and period_start = ${period.start}`;
    if (existing) return { invoice: toInvoice(existing), created: false };
    if (input.requestKey !== undefined) {
      // A retry of the request that ended a cycle early: that cycle's invoice answers it.
      const [ended] = await tx<InvoiceRow[]>`
        select * from invoices where org_id = ${orgId} and request_key = ${input.requestKey}`;
      if (ended) return { invoice: toInvoice(ended), created: false };
    }
    // Judged over the whole close: a plan paid from credits, then the next cycle's included credits.
    const lowBalance = await watchLowBalance(tx, orgId, now, org);
    const [later] =
      await tx`select number from invoices where org_id = ${orgId} and period_start > ${period.start} limit 1`;
    if (later)
      throw new BillingError("conflict", `a later cycle is already invoiced (${later.number}); cycles close in order`);

    // Under the lock: the events written since the unlocked read; or everything again if an
    // earlier cycle was closed meanwhile (that changes what "invoiced before" means).
    const previous = await previousInvoice(tx, orgId, period);
    const samePrevious =
      previous.end.getTime() === unlockedPrevious.end.getTime() && previous.cutoff === unlockedPrevious.cutoff;
    const rest = await usageTotals(tx, orgId, period, previous, samePrevious ? early.upto : 0n);
    const usage = samePrevious ? addUsageTotals(early.totals, rest.totals) : rest.totals;
    const cutoff = rest.upto;

    const lines: InvoiceLine[] = usage.map((u) => ({
      kind: u.late ? "late_usage" : "usage",
      product: u.product,
      model: u.model || null,
      description: `${u.late ? "Late usage: " : ""}${u.product}${u.model ? ` (${u.model})` : ""}`,
      quantities: Object.fromEntries(Object.entries(u.quantities).map(([k, v]) => [k, v.toString()])),
      amount: u.cost,
      periodStart: u.late ? null : period.start,
      periodEnd: period.end,
    }));
    const usageTotal = lines.reduce((s, l) => s + l.amount, 0n);

    let charges = 0n; // settled at close, from credits
    const anchor = await anchorDay(tx, orgId);
    const [sub] = await tx<
      { plan_id: string; pending_plan_id: string | null; started_at: Date; canceled_at: Date | null }[]
    >`select * from subscriptions where org_id = ${orgId}`;
    const subscribedThisCycle =
      sub && sub.started_at < period.end && (!sub.canceled_at || sub.canceled_at > period.start);
    const month = cycleContaining(period.start, anchor);
    if (sub && period.end < month.end) {
      const refusal = earlyEndRefusal(ctx.catalog, sub, period, month);
      if (refusal) throw new BillingError("conflict", refusal);
      if (await monthPlanCreditsWaitOnHold(tx, orgId, month.end, now))
        throw new BillingError(
          "conflict",
          "the month's included credits, ended early by a failed renewal, wait for a live hold taken on them: the cycle can end early once that hold is settled or has lapsed",
        );
    }
    if (subscribedThisCycle) {
      const plan = subscribedPlanAt(ctx.catalog, sub.plan_id, period.start);
      const price = proratedPrice(plan.monthlyPrice, period, anchor);
      const share =
        price === plan.monthlyPrice
          ? ""
          : ` (prorated for ${period.start.toISOString().slice(0, 10)} to ${period.end.toISOString().slice(0, 10)})`;
      lines.push({
        kind: "subscription",
        product: null,
        model: null,
        description: `${plan.name} plan${share}`,
        quantities: {},
        amount: price,
        periodStart: period.start,
        periodEnd: period.end,
      });
      charges += price;
    }
    // Those queued before the cycle ended: one queued after it (before a late close) is the next
    // invoice's, as it would be had the close run at the boundary.
    const adjustments = await tx<{ id: string; amount: bigint; description: string }[]>`
      select id, amount, description from invoice_adjustments
      where org_id = ${orgId} and applied_invoice_id is null and created_at < ${period.end}
      order by created_at for update`;
    for (const a of adjustments) {
      lines.push({
        kind: "adjustment",
        product: null,
        model: null,
        description: a.description,
        quantities: {},
        amount: a.amount,
        periodStart: null,
        periodEnd: null,
      });
      charges += a.amount;
    }

    // Usage was paid from credits as it happened; charges are settled now, as far as credits go,
    // but not from included credits that outlive the cycle: a later cycle's (metering grants them
    // before the org's first request of a cycle, which may come before a late close), or, for a
    // cycle closed early, the rest of its month's (at the boundary they would have expired first).
    const laterCycles = await laterPlanCredits(tx, orgId, period.end, now);
    const available = spendable(org.credits, org.pendingExpiry) - laterCycles;
    const { settled, amountDue, subtotal, creditsApplied } = settleCharges({ usage: usageTotal, charges, available });

    const id = newId("inv");
    // The billing details as they are now, under the org's lock: the issued invoice keeps them.
    const details = await billingDetailsSnapshot(tx, orgId);
    await tx`insert into invoices (id, org_id, period_start, period_end, status, subtotal, credits_applied, amount_due, usage_seq_cutoff, billing_details, created_at, request_key)
             values (${id}, ${orgId}, ${period.start}, ${period.end}, 'draft', ${subtotal.toString()}, ${creditsApplied.toString()},
                     ${amountDue.toString()}, ${cutoff.toString()}, ${details ? tx.json(details) : null}, ${now}, ${input.requestKey ?? null})`;
    if (lines.length > 0) {
      const rows = lines.map((l) => ({
        invoice_id: id,
        kind: l.kind,
        product: l.product,
        model: l.model,
        description: l.description,
        quantities: l.quantities as never,
        amount: l.amount.toString(),
        period_start: l.periodStart,
        period_end: l.periodEnd,
      }));
      await tx`insert into invoice_lines ${tx(rows, "invoice_id", "kind", "product", "model", "description", "quantities", "amount", "period_start", "period_end")}`;
    }
    if (adjustments.length > 0) {
      await tx`update invoice_adjustments set applied_invoice_id = ${id} where id = any(${adjustments.map((a) => a.id)})`;
    }
    // Paying the plan from credits spends expiring grants first, like usage does, but not a later
    // cycle's included credits (above).
    if (settled > 0n && org.hasExpiringGrants)
      await consumeExpiringGrants(tx, orgId, settled, now, { planCreditsEndingAfter: period.end });
    let settlement: string | null = null;
    if (settled !== 0n) {
      // The invoice has no number yet (it gets one last, see below): the entry names its id.
      ({ transactionId: settlement } = await postTransfer(tx, {
        kind: "invoice_settlement",
        orgId,
        idempotencyKey: id,
        description: `Invoice ${id}: ${settled > 0n ? "charges paid from credits" : "credit from adjustments"}`,
        metadata: { invoice_id: id },
        from: orgCreditsAccount(orgId),
        to: SystemAccounts.revenue,
        amount: settled,
        createdAt: now,
      }));
    }

    // A plan change waits for the cycle boundary; then the new cycle's included credits (once
    // per anchored month: an early close does not grant the same month twice).
    if (sub && !sub.canceled_at) {
      const [current] = await tx<{ plan_id: string }[]>`
        update subscriptions set plan_id = coalesce(pending_plan_id, plan_id), pending_plan_id = null where org_id = ${orgId} returning plan_id`;
      if (!current) throw new Error(`the subscription of ${orgId} vanished under its lock`);
      const next = cycleFrom(period.end, anchor);
      if (next.end > now) {
        const plan = subscribedPlanAt(ctx.catalog, current.plan_id, next.start);
        await grantIncludedCredits(txc, { orgId, plan, cycle: next, anchorDay: anchor });
      }
    }
    await lowBalance(settled > 0n ? settlement : null);

    // Issued last: the number counter is the one row every close writes, so it is locked only
    // for this statement and the commit, and a close that rolls back takes its number back.
    const status: InvoiceStatus = amountDue === 0n ? "paid" : "open";
    const [issued] = await tx<InvoiceRow[]>`
      with n as (update invoice_number_counter set last_number = last_number + 1 returning last_number)
      update invoices set number = 'INV-' || lpad(n.last_number::text, greatest(6, length(n.last_number::text)), '0'),
        status = ${status}, issued_at = ${now}, paid_at = ${status === "paid" ? now : null}
      from n where id = ${id} returning invoices.*`;
    if (!issued) throw new Error("invoice_number_counter has no row (migration 0016)");
    return { invoice: { ...toInvoice(issued), lines }, created: true };
  });
}

/**
 * Why a cycle may not end early at `period.end`, if it may not. A cycle closed early is charged
 * its share of the plan's price, and the month's included credits stay to the month's end: the
 * short cycle after it pays the rest, under a plan whose share of the month's credits, less those
 * already granted, it gets. That adds up only if the plan after the early end costs and includes at
 * least what the month's plan does on the terms its credits were granted on (the catalog version at
 * the month's start). So the cycle runs to its boundary when the subscription ends by then, moves
 * to a plan that costs or includes less, or its plan's terms at the month's start, at the cycle's
 * start and at the early end are not the same (an early end kept the month's credits for part of
 * the price, or charged the rest of the month on terms no credits were granted on; the next plan's
 * short cycle is charged and credited on the terms at its start alike); nor may a cycle end before a
 * subscription that started after that instant (another process's clock ahead), granted the whole
 * month.
 */
function earlyEndRefusal(
  catalog: Catalog,
  sub: { plan_id: string; pending_plan_id: string | null; started_at: Date; canceled_at: Date | null },
  period: Period,
  month: Period,
): string | undefined {
  if (sub.started_at >= period.end)
    return `the subscription started at ${sub.started_at.toISOString()}, after this early end; end the cycle again now`;
  if (sub.canceled_at && sub.canceled_at <= period.end && sub.canceled_at > period.start)
    return "the subscription was cancelled in this cycle: its cycle runs to its boundary and cannot end early";
  // Cancelled before this cycle: no plan is charged from here on. Cancelled after the early end
  // (by a process whose clock is ahead): the cycle after it is charged the plan, so the rules below hold.
  if (sub.canceled_at && sub.canceled_at <= period.start) return undefined;
  const plan = subscribedPlanAt(catalog, sub.plan_id, month.start);
  // The same terms at the month's start (its credits), at this cycle's start (this cycle's charge,
  // and its credits if it began at an earlier early end) and at the early end (the next cycle's
  // charge): otherwise an early end kept credits granted on one version's terms while the rest of
  // the month was charged on another's.
  const cycleStart = subscribedPlanAt(catalog, sub.plan_id, period.start);
  const current = subscribedPlanAt(catalog, sub.plan_id, period.end);
  if (!sameTerms(plan, cycleStart) || !sameTerms(plan, current))
    return `the ${plan.name} plan's price or included credits changed within this month: the cycle runs to its boundary and cannot end early`;
  if (!sub.pending_plan_id || sub.pending_plan_id === sub.plan_id) return undefined;
  const next = subscribedPlanAt(catalog, sub.pending_plan_id, period.end);
  if (next.includedCredits < plan.includedCredits || next.monthlyPrice < plan.monthlyPrice)
    return `the subscription moves to ${next.name}, which costs or includes less than ${plan.name}, at the cycle's boundary: the cycle cannot end early`;
  return undefined;
}

/** Two plans (or one at two instants) cost and include the same. */
function sameTerms(a: Plan, b: Plan): boolean {
  return a.monthlyPrice === b.monthlyPrice && a.includedCredits === b.includedCredits;
}

/**
 * What is left of the included credits that expire after `end` (those expired by `now` are out of
 * the spendable credits already, as pending expiries) once the live holds are settled. The
 * spendable credits are already net of those holds, and a hold's charge draws on the grants that
 * expire soonest, often these: counted in full, the part of them a hold will spend would be taken
 * off the spendable credits twice. Only the holds' sure draws are counted (grantsLeftAfterHolds):
 * counting more would let the charges spend what a hold later needs, once the grant has expired.
 */
async function laterPlanCredits(tx: TransactionSql, orgId: string, end: Date, now: Date): Promise<bigint> {
  const { grants, left } = await grantsAfterLiveHolds(tx, orgId, now);
  return grants
    .filter((g) => g.source === "plan" && g.expiresAt > end && g.expiresAt > now)
    .reduce((sum, g) => sum + (left.get(g.id) ?? 0n), 0n);
}

async function anchorDay(tx: TransactionSql, orgId: string): Promise<number> {
  const [row] = await tx<{ d: number }[]>`select billing_anchor_day as d from organizations where id = ${orgId}`;
  if (!row) throw new BillingError("not_found", `no organization ${orgId}`);
  return row.d;
}
