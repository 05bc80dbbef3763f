import type { Sql, TransactionSql } from "../db/client.js";
import { BillingError } from "../errors.js";
import { newId } from "../ids.js";
import { orgCreditsAccount, SystemAccounts } from "../ledger/accounts.js";
import { divideHalfEven } from "../ledger/money.js";
import { fingerprint, postTransaction } from "../ledger/post-transaction.js";
import type { Catalog } from "./catalog.js";
import { consumeExpiringGrants } from "./grants.js";
import { watchLowBalance } from "./low-balance.js";
import { lockOrgs, spendable } from "./org-locks.js";
import { cycleContaining, type Period } from "./periods.js";
import { grantIncludedCredits, subscribedPlanAt } from "./subscriptions.js";

export type InvoiceStatus = "draft" | "open" | "paid" | "void";
export type InvoiceLine = {
  kind: "usage" | "late_usage" | "subscription" | "adjustment";
  product: string | null;
  model: string | null;
  description: string;
  quantities: Record<string, string>;
  amount: bigint;
  periodStart: Date | null;
  periodEnd: Date | null;
};
export type Invoice = {
  id: string;
  number: string;
  orgId: string;
  periodStart: Date;
  periodEnd: Date;
  status: InvoiceStatus;
  subtotal: bigint;
  creditsApplied: bigint;
  amountDue: bigint;
  issuedAt: Date | null;
  paidAt: Date | null;
  voidedAt: Date | null;
  createdAt: Date;
  lines?: InvoiceLine[];
};

type InvoiceRow = {
  id: string;
  number: string;
  org_id: string;
  period_start: Date;
  period_end: Date;
  status: InvoiceStatus;
  subtotal: bigint;
  credits_applied: bigint;
  amount_due: bigint;
  usage_seq_cutoff: bigint;
  issued_at: Date | null;
  paid_at: Date | null;
  voided_at: Date | null;
  created_at: Date;
};
const toInvoice = (r: InvoiceRow): Invoice => ({
  id: r.id,
  number: r.number,
  orgId: r.org_id,
  periodStart: r.period_start,
  periodEnd: r.period_end,
  status: r.status,
  subtotal: r.subtotal,
  creditsApplied: r.credits_applied,
  amountDue: r.amount_due,
  issuedAt: r.issued_at,
  paidAt: r.paid_at,
  voidedAt: r.voided_at,
  createdAt: r.created_at,
});

/**
 * Closes one organization's cycle: one invoice per org and period, whoever calls and however
 * often. It rolls up every usage event not invoiced before, charges the plan in arrears, applies
 * queued adjustments, settles what it can from credits, and issues the invoice, all in one
 * transaction. The org's usage history is read before the org's lock (the one every usage write
 * takes); under the lock it reads only the events written meanwhile, then writes: metering
 * never waits on the long read.
 */
export async function closeCycle(
  sql: Sql,
  catalog: Catalog,
  orgId: string,
  period: Period,
  now: Date,
): Promise<{ invoice: Invoice; created: boolean }> {
  if (period.end > now)
    throw new BillingError("invalid_request", `the cycle ending ${period.end.toISOString()} has not ended yet`);
  return sql.begin(async (tx) => {
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
    const [sub] = await tx<
      { plan_id: string; started_at: Date; canceled_at: Date | null }[]
    >`select * from subscriptions where org_id = ${orgId}`;
    const subscribedThisCycle =
      sub && sub.started_at < period.end && (!sub.canceled_at || sub.canceled_at > period.start);
    if (subscribedThisCycle) {
      const plan = subscribedPlanAt(catalog, sub.plan_id, period.start);
      const price = proratedPrice(plan.monthlyPrice, period, await anchorDay(tx, orgId));
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
    const adjustments = await tx<{ id: string; amount: bigint; description: string }[]>`
      select id, amount, description from invoice_adjustments where org_id = ${orgId} and applied_invoice_id is null order by created_at for update`;
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

    // Usage was paid from credits as it happened; charges are settled now, as far as credits go.
    const available = spendable(org);
    const settled = charges > 0n ? (charges < available ? charges : available > 0n ? available : 0n) : charges;
    const amountDue = charges - settled;
    const subtotal = usageTotal + charges;
    // A credit beyond the cycle's charges went to the balance: it is not credits applied.
    const creditsApplied = subtotal - amountDue > 0n ? subtotal - amountDue : 0n;

    const id = newId("inv");
    await tx`insert into invoices (id, org_id, period_start, period_end, status, subtotal, credits_applied, amount_due, usage_seq_cutoff, created_at)
             values (${id}, ${orgId}, ${period.start}, ${period.end}, 'draft', ${subtotal.toString()}, ${creditsApplied.toString()},
                     ${amountDue.toString()}, ${cutoff.toString()}, ${now})`;
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
    // Paying the plan from credits spends expiring grants first, like usage does.
    if (settled > 0n && org.hasExpiringGrants) await consumeExpiringGrants(tx, orgId, settled, now);
    let settlement: string | null = null;
    if (settled !== 0n) {
      // The invoice has no number yet (it gets one last, see below): the entry names its id.
      ({ transactionId: settlement } = await postTransaction(tx, {
        kind: "invoice_settlement",
        orgId,
        idempotencyKey: id,
        description: `Invoice ${id}: ${settled > 0n ? "charges paid from credits" : "credit from adjustments"}`,
        metadata: { invoice_id: id },
        entries: [
          { accountId: orgCreditsAccount(orgId), amount: -settled },
          { accountId: SystemAccounts.revenue, amount: settled },
        ],
        createdAt: now,
      }));
    }

    // A plan change waits for the cycle boundary; then the new cycle's included credits (once
    // per anchored month: an early close does not grant the same month twice).
    if (sub && !sub.canceled_at) {
      const [current] = await tx<{ plan_id: string }[]>`
        update subscriptions set plan_id = coalesce(pending_plan_id, plan_id), pending_plan_id = null where org_id = ${orgId} returning plan_id`;
      const next = cycleFrom(period.end, await anchorDay(tx, orgId));
      if (next.end > now)
        await grantIncludedCredits(tx, orgId, subscribedPlanAt(catalog, current!.plan_id, next.start), next, now);
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

type PreviousInvoice = { end: Date; cutoff: bigint };
async function previousInvoice(tx: TransactionSql, orgId: string, period: Period): Promise<PreviousInvoice> {
  const [row] = await tx<{ period_end: Date; usage_seq_cutoff: bigint }[]>`
    select period_end, usage_seq_cutoff from invoices where org_id = ${orgId} and period_start < ${period.start}
    order by period_start desc limit 1`;
  return { end: row?.period_end ?? new Date(0), cutoff: row?.usage_seq_cutoff ?? 0n };
}

type UsageTotal = { late: boolean; product: string; model: string; cost: bigint; quantities: Record<string, bigint> };

/**
 * Usage of the period not invoiced before, per product and model, among the org's events with
 * afterSeq < seq <= upto, where upto is the newest seq of the org this statement sees. Not
 * invoiced before = not (occurred before the previous invoice's period end and written before
 * its close); usage that occurred before this period is late.
 *
 * Read without the org's lock, this still sees every event up to `upto`: usage is written under
 * the org's lock (metering_batch) and commits before releasing it, so a write still in flight
 * took the lock after every write this statement sees and has larger seqs. The close then reads
 * the events after `upto` under the lock, where none can be in flight.
 */
async function usageTotals(
  tx: TransactionSql,
  orgId: string,
  period: Period,
  previous: PreviousInvoice,
  afterSeq: bigint,
): Promise<{ totals: UsageTotal[]; upto: bigint }> {
  const rows = await tx<
    {
      upto: bigint;
      late: boolean | null;
      product: string;
      model: string;
      cost: string;
      quantities: Record<string, string> | null;
    }[]
  >`
    with bound as (select coalesce(max(seq), 0) as upto from usage_events where org_id = ${orgId}),
    events as (
      select product, model, quantities, cost, occurred_at < ${period.start} as late
      from usage_events
      where org_id = ${orgId} and seq > ${afterSeq.toString()} and seq <= (select upto from bound) and occurred_at < ${period.end}
        and not (occurred_at < ${previous.end} and seq <= ${previous.cutoff.toString()})
    ),
    meters as (
      select late, product, model, jsonb_object_agg(key, total) as quantities from (
        select late, product, model, q.key, sum(q.value::numeric)::text as total
        from events, jsonb_each_text(quantities) q group by late, product, model, q.key
      ) m group by late, product, model
    ),
    totals as (
      select e.late, e.product, e.model, sum(e.cost)::text as cost, m.quantities
      from events e left join meters m using (late, product, model)
      group by e.late, e.product, e.model, m.quantities
    )
    select b.upto, t.* from bound b left join totals t on true`;
  const totals = rows
    .filter((r) => r.late !== null)
    .map((r) => ({
      late: r.late!,
      product: r.product,
      model: r.model,
      cost: BigInt(r.cost),
      quantities: Object.fromEntries(Object.entries(r.quantities ?? {}).map(([k, v]) => [k, BigInt(v)])),
    }));
  return { totals: sortUsageTotals(totals), upto: rows[0]!.upto };
}

/** Line order: this period's usage, then late usage; each by product, then model. */
function sortUsageTotals(totals: UsageTotal[]): UsageTotal[] {
  const key = (u: UsageTotal) => [u.late ? 1 : 0, u.product, u.model] as const;
  return totals.sort((x, y) => {
    const [a, b] = [key(x), key(y)];
    for (let i = 0; i < a.length; i++) if (a[i]! !== b[i]!) return a[i]! < b[i]! ? -1 : 1;
    return 0;
  });
}

function addUsageTotals(a: UsageTotal[], b: UsageTotal[]): UsageTotal[] {
  const merged = new Map<string, UsageTotal>();
  for (const u of [...a, ...b]) {
    const k = JSON.stringify([u.late, u.product, u.model]);
    const seen = merged.get(k);
    if (!seen) {
      merged.set(k, { ...u, quantities: { ...u.quantities } });
      continue;
    }
    seen.cost += u.cost;
    for (const [meter, q] of Object.entries(u.quantities)) seen.quantities[meter] = (seen.quantities[meter] ?? 0n) + q;
  }
  return sortUsageTotals([...merged.values()]);
}

async function anchorDay(tx: TransactionSql, orgId: string): Promise<number> {
  const [row] = await tx<{ d: number }[]>`select billing_anchor_day as d from organizations where id = ${orgId}`;
  return row!.d;
}

/** A plan's monthly price for a cycle shorter than its anchored month, by time, rounded half to even. */
export function proratedPrice(monthly: bigint, period: { start: Date; end: Date }, anchor: number): bigint {
  const full = cycleContaining(period.start, anchor);
  const fullMs = BigInt(full.end.getTime() - full.start.getTime());
  const ms = BigInt(period.end.getTime() - period.start.getTime());
  if (ms >= fullMs) return monthly;
  return divideHalfEven(monthly * ms, fullMs);
}

const MIN_EARLY_CYCLE_MS = 60_000;

/**
 * Cycles that have ended without an invoice, oldest first, for one org or all. A cycle starts
 * where the previous invoice ended (or at the org's anchored cycle start when it has none) and
 * runs to the next anchor date, so a cycle closed early ("now") is followed by a short one.
 */
export async function dueCycles(
  sql: Sql,
  now: Date,
  opts: { orgId?: string; endCurrentNow?: boolean } = {},
): Promise<{ orgId: string; period: Period }[]> {
  const orgs = await sql<{ id: string; billing_anchor_day: number; created_at: Date; last_end: Date | null }[]>`
    select o.id, o.billing_anchor_day, o.created_at, (select max(period_end) from invoices i where i.org_id = o.id) as last_end
    from organizations o ${opts.orgId ? sql`where o.id = ${opts.orgId}` : sql``}`;
  if (opts.orgId && orgs.length === 0) throw new BillingError("not_found", `no organization ${opts.orgId}`);
  const due: { orgId: string; period: Period }[] = [];
  for (const o of orgs) {
    const start = o.last_end ?? cycleContaining(o.created_at, o.billing_anchor_day).start;
    let p = cycleFrom(start, o.billing_anchor_day);
    while (p.end <= now) {
      due.push({ orgId: o.id, period: p });
      p = cycleFrom(p.end, o.billing_anchor_day);
    }
    // A cycle that began less than a minute ago is not ended again: racing or repeated
    // "end now" requests then yield one invoice instead of a trail of empty slivers.
    if (opts.endCurrentNow && now.getTime() - p.start.getTime() >= MIN_EARLY_CYCLE_MS)
      due.push({ orgId: o.id, period: { ...p, end: now } });
  }
  return due;
}

/**
 * When the org's running cycle may be ended early, if not yet: a cycle that began less than a
 * minute ago (the previous one was just closed) is not ended again (see dueCycles).
 */
export async function earlyEndNotBefore(sql: Sql, orgId: string, now: Date): Promise<Date | undefined> {
  const [o] = await sql<{ billing_anchor_day: number; created_at: Date; last_end: Date | null }[]>`
    select o.billing_anchor_day, o.created_at, (select max(period_end) from invoices i where i.org_id = o.id) as last_end
    from organizations o where o.id = ${orgId}`;
  if (!o) return undefined;
  let p = cycleFrom(o.last_end ?? cycleContaining(o.created_at, o.billing_anchor_day).start, o.billing_anchor_day);
  while (p.end <= now) p = cycleFrom(p.end, o.billing_anchor_day);
  const notBefore = new Date(p.start.getTime() + MIN_EARLY_CYCLE_MS);
  return notBefore > now ? notBefore : undefined;
}

/** The cycle that starts at `start` and ends at the next anchor date after it. */
function cycleFrom(start: Date, anchorDay: number): Period {
  return { label: cycleContaining(start, anchorDay).label, start, end: cycleContaining(start, anchorDay).end };
}

/** Closes every due cycle (of one org or all), a few organizations at a time. */
export async function closeDueCycles(
  sql: Sql,
  catalog: Catalog,
  now: Date,
  opts: { orgId?: string; concurrency?: number; endCurrentNow?: boolean } = {},
) {
  await catalog.refresh();
  const due = await dueCycles(sql, now, opts);
  // Cycles of one org must close in order; different orgs close in parallel.
  const byOrg = new Map<string, Period[]>();
  for (const d of due) byOrg.set(d.orgId, [...(byOrg.get(d.orgId) ?? []), d.period]);
  const queue = [...byOrg.entries()];
  let created = 0;
  let existing = 0;
  const failed: { orgId: string; error: unknown }[] = [];
  async function worker() {
    for (let next = queue.shift(); next; next = queue.shift()) {
      try {
        for (const period of next[1]) {
          const r = await closeCycle(sql, catalog, next[0], period, now);
          if (r.created) created++;
          else existing++;
        }
      } catch (error) {
        // One org's failure must not stop the others' invoicing; its later cycles wait for the
        // next run, as they must close in order.
        failed.push({ orgId: next[0], error });
      }
    }
  }
  await Promise.all(Array.from({ length: opts.concurrency ?? 4 }, worker));
  if (failed.length > 0) {
    throw new AggregateError(
      failed.map((f) => f.error),
      `closed ${created} cycles, but ${failed.length} organization(s) failed: ${failed.map((f) => `${f.orgId}: ${f.error instanceof Error ? f.error.message : String(f.error)}`).join("; ")}`,
    );
  }
  return { created, existing, orgs: byOrg.size };
}

export async function listInvoices(sql: Sql, orgId: string, opts: { limit: number; before?: string }) {
  const rows = await sql<InvoiceRow[]>`
    select * from invoices where org_id = ${orgId} and status <> 'draft'
    ${opts.before ? sql`and period_start < (select period_start from invoices where id = ${opts.before} and org_id = ${orgId})` : sql``}
    order by period_start desc limit ${opts.limit + 1}`;
  const page = rows.slice(0, opts.limit).map(toInvoice);
  return { data: page, nextCursor: rows.length > opts.limit ? page.at(-1)!.id : null };
}

export async function getInvoice(sql: Sql, orgId: string, id: string): Promise<Invoice> {
  // Another org's invoice is simply not found: its existence is not disclosed.
  const [row] = await sql<
    InvoiceRow[]
  >`select * from invoices where id = ${id} and org_id = ${orgId} and status <> 'draft'`;
  if (!row) throw new BillingError("not_found", `no invoice ${id}`);
  const lines = await sql<
    {
      kind: InvoiceLine["kind"];
      product: string | null;
      model: string | null;
      description: string;
      quantities: Record<string, string>;
      amount: bigint;
      period_start: Date | null;
      period_end: Date | null;
    }[]
  >`
    select kind, product, model, description, quantities, amount, period_start, period_end from invoice_lines where invoice_id = ${id} order by id`;
  return {
    ...toInvoice(row),
    lines: lines.map((l) => ({
      kind: l.kind,
      product: l.product,
      model: l.model,
      description: l.description,
      quantities: l.quantities,
      amount: l.amount,
      periodStart: l.period_start,
      periodEnd: l.period_end,
    })),
  };
}

/** open → paid or void; anything else is refused here and by the database. */
export async function setInvoiceStatus(sql: Sql, id: string, status: "paid" | "void", now: Date): Promise<Invoice> {
  const [row] = await sql<InvoiceRow[]>`select * from invoices where id = ${id}`;
  if (!row) throw new BillingError("not_found", `no invoice ${id}`);
  if (row.status !== "open")
    throw new BillingError(
      "conflict",
      `invoice ${row.number} is ${row.status}; only an open invoice can become ${status}`,
    );
  const [updated] = await sql<InvoiceRow[]>`
    update invoices set status = ${status}, paid_at = ${status === "paid" ? now : null}, voided_at = ${status === "void" ? now : null}
    where id = ${id} and status = 'open' returning *`;
  if (!updated) throw new BillingError("conflict", `invoice ${row.number} changed status concurrently`);
  return toInvoice(updated);
}

/** Queues a correction for the org's next invoice (negative amount = a credit to the customer). */
export async function createAdjustment(
  sql: Sql,
  input: { orgId: string; amount: bigint; description: string; correctsInvoiceId?: string; idempotencyKey: string },
  now: Date,
) {
  const [org] = await sql`select 1 from organizations where id = ${input.orgId}`;
  if (!org) throw new BillingError("not_found", `no organization ${input.orgId}`);
  if (input.correctsInvoiceId) {
    // Only an issued invoice of this same organization can be corrected.
    const [invoice] =
      await sql`select 1 from invoices where id = ${input.correctsInvoiceId} and org_id = ${input.orgId} and status <> 'draft'`;
    if (!invoice)
      throw new BillingError("not_found", `no invoice ${input.correctsInvoiceId} for organization ${input.orgId}`, {
        details: { param: "corrects_invoice_id" },
      });
  }
  const requestFingerprint = fingerprint({
    amount: input.amount,
    description: input.description,
    corrects: input.correctsInvoiceId ?? null,
  });
  const [row] = await sql<{ id: string }[]>`
    insert into invoice_adjustments (id, org_id, amount, description, corrects_invoice_id, idempotency_key, request_fingerprint, created_at)
    values (${newId("adj")}, ${input.orgId}, ${input.amount.toString()}, ${input.description}, ${input.correctsInvoiceId ?? null},
            ${input.idempotencyKey}, ${requestFingerprint}, ${now})
    on conflict (org_id, idempotency_key) do nothing returning id`;
  if (row) return { id: row.id, created: true };
  const [existing] = await sql<{ id: string; request_fingerprint: string | null }[]>`
    select id, request_fingerprint from invoice_adjustments where org_id = ${input.orgId} and idempotency_key = ${input.idempotencyKey}`;
  if (existing!.request_fingerprint !== requestFingerprint) {
    throw new BillingError(
      "idempotency_key_reused",
      "this idempotency key was already used for a different adjustment",
    );
  }
  return { id: existing!.id, created: false };
}

export { cycleContaining };
