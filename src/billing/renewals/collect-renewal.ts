import type { Logger } from "pino";
import type { TransactionSql } from "../../db/client.js";
import { BillingError } from "../../errors.js";
import { newId } from "../../ids.js";
import { orgCreditsAccount } from "../../ledger/accounts.js";
import {
  chargeCardOffSession,
  defaultCard,
  type PaymentRefusal,
  type Processor,
  type RefusalKind,
} from "../auto-topup/card-charge.js";
import { at, withTransaction, type BillingContext } from "../context.js";
import { closeEndedCycles } from "../invoices/close-due-cycles.js";
import { NANO_USD_PER_CENT } from "../payments/card-payment.js";
import { endIncludedCredits, planAt } from "../plans.js";
import { atOrgTime, cancelInstant } from "../subscriptions.js";
import { emitEvent } from "../events/emit.js";
import { invoicePaymentFailedEvent } from "../events/facts.js";

const DAY_MS = 86_400_000;

/**
 * When each attempt to charge an open invoice is due, in days after the invoice was issued:
 * attempt 1 at once, then retries 1, 3 and 7 days after issue. When the last one fails the org
 * moves to the free plan (downgradeAfterFailedRenewal).
 */
export const RENEWAL_SCHEDULE_DAYS = [0, 1, 3, 7] as const;
export const FREE_PLAN_ID = "free";

export function attemptDueAt(issuedAt: Date, attempt: number): Date {
  const days = RENEWAL_SCHEDULE_DAYS[attempt - 1];
  if (days === undefined) throw new Error(`no renewal attempt ${attempt}`);
  return new Date(issuedAt.getTime() + days * DAY_MS);
}

/** Card charges are whole cents: an amount due with a fraction of a cent is charged the cent above. */
export function centsCeil(nano: bigint): bigint {
  return ((nano + NANO_USD_PER_CENT - 1n) / NANO_USD_PER_CENT) * NANO_USD_PER_CENT;
}

/**
 * The least a renewal attempt charges: the card processor's minimum charge in USD (Stripe refuses
 * less with `amount_too_small`, which four attempts would have taken for a decline and moved an org
 * with a working card to the free plan). The charge is credited like a top-up and pays the invoice
 * first; what it charged beyond the amount due stays in the org's credits.
 */
const RENEWAL_MIN_CHARGE = 50n * NANO_USD_PER_CENT;

/** What a renewal attempt charges for an amount due: whole cents, and at least the processor's minimum. */
function renewalChargeAmount(amountDue: bigint): bigint {
  const cents = centsCeil(amountDue);
  return cents < RENEWAL_MIN_CHARGE ? RENEWAL_MIN_CHARGE : cents;
}

export type RenewalStep =
  | "processor_not_configured"
  | "not_open"
  | "not_due"
  | "awaiting_webhook"
  | "charged"
  | "failed"
  | "downgraded"
  | "already_downgraded";

type InvoiceRow = { id: string; org_id: string; number: string; status: string; amount_due: bigint; issued_at: Date };
type AttemptRow = {
  id: string;
  attempt: number;
  status: string;
  amount: bigint;
  processor_payment_id: string | null;
  /** The card it was sent to (null for attempts made before migration 0056). */
  customer_id: string | null;
  payment_method_id: string | null;
};

/**
 * One step of collecting an open invoice's amount due from the default card, whenever it is
 * called (the sweep calls it for every open invoice): run the attempt in flight, or start the next
 * one if it is due (RENEWAL_SCHEDULE_DAYS), or, after the last one failed, move the org to the
 * free plan. Each attempt is one `renewal_charges` row, unique per invoice and attempt number,
 * charged with the processor idempotency key `renewal:<invoice>:<attempt>`; a success is credited
 * by the signed webhook, and that credit pays this invoice first (settleOpenInvoices).
 */
export async function collectRenewal(
  ctx: BillingContext,
  input: { invoiceId: string; processor: Processor | null },
): Promise<RenewalStep> {
  // A deployment without card payments does not collect by card: its open invoices stay open
  // (paid by a top-up or an operator), with no attempt recorded and no move to the free plan.
  if (!input.processor) return "processor_not_configured";
  const now = ctx.clock();
  const fixed = at(ctx, now);
  // A downgrade below changes the plan: like any subscription change, it must not reach back into
  // a cycle that has ended but is not closed yet (which would then be charged the free plan).
  const [owner] = await ctx.sql<{ org_id: string }[]>`select org_id from invoices where id = ${input.invoiceId}`;
  if (owner) {
    await ctx.catalog.refresh();
    await closeEndedCycles(fixed, { orgId: owner.org_id });
  }
  const next = await withTransaction(fixed, async ({ sql: tx, logger }) => {
    // The org's lock before the invoice's, as top-ups (which pay open invoices) and closes take
    // them: the downgrade below ends plan credits under it.
    if (owner) await tx`select 1 from ledger_accounts where id = ${orgCreditsAccount(owner.org_id)} for update`;
    const [invoice] = await tx<InvoiceRow[]>`
      select id, org_id, number, status, amount_due, issued_at from invoices where id = ${input.invoiceId} for update`;
    if (!invoice) throw new BillingError("not_found", `no invoice ${input.invoiceId}`);
    if (invoice.status !== "open" || invoice.amount_due <= 0n) return { step: "not_open" as const };
    const attempts = await tx<AttemptRow[]>`
      select id, attempt, status, amount, processor_payment_id, customer_id, payment_method_id
      from renewal_charges where invoice_id = ${invoice.id} order by attempt`;
    const last = attempts.at(-1);
    if (last?.status === "pending")
      return last.processor_payment_id
        ? { step: "awaiting_webhook" as const }
        : { step: "charge" as const, invoice, attempt: last };
    if (last?.status === "succeeded") return { step: "awaiting_webhook" as const }; // credited, paying an older invoice first
    const number = (last?.attempt ?? 0) + 1;
    if (number > RENEWAL_SCHEDULE_DAYS.length) return { step: "downgrade" as const };
    if (now < attemptDueAt(invoice.issued_at, number)) return { step: "not_due" as const };
    const card = await defaultCard(tx, invoice.org_id);
    const attempt: AttemptRow = {
      id: newId("rnw"),
      attempt: number,
      status: "pending",
      amount: renewalChargeAmount(invoice.amount_due),
      processor_payment_id: null,
      customer_id: card?.customerId ?? null,
      payment_method_id: card?.paymentMethodId ?? null,
    };
    const reason = card ? null : "no_default_card";
    await tx`
      insert into renewal_charges (id, invoice_id, attempt, org_id, amount, status, reason, customer_id, payment_method_id, created_at, updated_at)
      values (${attempt.id}, ${invoice.id}, ${number}, ${invoice.org_id}, ${attempt.amount.toString()},
              ${reason ? "failed" : "pending"}, ${reason}, ${attempt.customer_id}, ${attempt.payment_method_id}, ${now}, ${now})`;
    if (reason) {
      await emitEvent(tx, invoicePaymentFailedEvent({ invoice, attempt, code: reason, now }));
      logger.info({ invoice_id: invoice.id, attempt: number, reason }, "renewal attempt failed before the processor");
      return { step: "failed" as const };
    }
    return { step: "charge" as const, invoice, attempt };
  });
  if (next.step === "downgrade") return downgradeAfterFailedRenewal(ctx, input.invoiceId);
  if (next.step !== "charge") return next.step;
  const { invoice, attempt } = next;
  // The card the attempt was first sent to: a retry after a lost answer is the same request, which
  // the processor replays under the key (charged or not), even if the card was since removed.
  const card =
    attempt.customer_id && attempt.payment_method_id
      ? { customerId: attempt.customer_id, paymentMethodId: attempt.payment_method_id }
      : await withTransaction(fixed, ({ sql }) => defaultCard(sql, invoice.org_id));
  const outcome = card
    ? await chargeCardOffSession(input.processor, {
        ...card,
        amount: attempt.amount,
        idempotencyKey: `renewal:${invoice.id}:${attempt.attempt}`,
        description: `Hanzo invoice ${invoice.number}`,
        metadata: { hanzo_org_id: invoice.org_id, hanzo_invoice: invoice.id, hanzo_renewal_charge: attempt.id },
      })
    : ({ kind: "declined", paymentId: null, code: "no_default_card" } as const);
  return withTransaction(at(ctx, ctx.clock()), async ({ sql: tx, logger }) => {
    if (outcome.kind === "succeeded") {
      await tx`update renewal_charges set processor_payment_id = coalesce(processor_payment_id, ${outcome.paymentId}), updated_at = ${now}
               where id = ${attempt.id}`;
      return "charged" as const;
    }
    await failRenewalAttempt(tx, logger, {
      which: tx`id = ${attempt.id}`,
      kind: outcome.kind,
      code: outcome.code,
      paymentId: outcome.paymentId,
      now,
    });
    return "failed" as const;
  });
}

/**
 * Ends a pending renewal attempt the card refused, once: the invoice stays open (the next attempt
 * follows the schedule), an invoice.payment_failed event and a warn line say so.
 */
async function failRenewalAttempt(
  tx: TransactionSql,
  logger: Logger,
  input: {
    which: ReturnType<TransactionSql>;
    kind: RefusalKind;
    code: string;
    paymentId: string | null;
    now: Date;
  },
): Promise<boolean> {
  const { now } = input;
  const [failed] = await tx<{ id: string; attempt: number; amount: bigint; invoice_id: string }[]>`
    update renewal_charges set status = 'failed', reason = ${`${input.kind}: ${input.code}`},
      processor_payment_id = coalesce(processor_payment_id, ${input.paymentId}), updated_at = ${now}
    where ${input.which} and status = 'pending' returning id, attempt, amount, invoice_id`;
  if (!failed) return false;
  const [invoice] = await tx<{ id: string; org_id: string; number: string }[]>`
    select id, org_id, number from invoices where id = ${failed.invoice_id}`;
  if (!invoice) throw new Error(`renewal charge ${failed.id} of a missing invoice ${failed.invoice_id}`);
  await emitEvent(tx, invoicePaymentFailedEvent({ invoice, attempt: failed, code: input.code, now }));
  logger.warn(
    {
      org_id: invoice.org_id,
      invoice_id: invoice.id,
      attempt: failed.attempt,
      outcome: input.kind,
      code: input.code,
    },
    "renewal charge refused by the card; the invoice stays open",
  );
  return true;
}

/**
 * The signed webhook says a payment failed (payment_intent.payment_failed): if it is a renewal
 * attempt still pending (by payment id, or our id in its metadata), it fails as if the worker had
 * heard the refusal. This ends an attempt whose answer was lost and whose retry the processor
 * can no longer replay (the same idempotency key with another default card is refused), so the
 * schedule goes on. Only for the org the payment's customer is linked to.
 */
export async function renewalPaymentFailed(
  tx: TransactionSql,
  logger: Logger,
  input: PaymentRefusal,
): Promise<boolean> {
  return failRenewalAttempt(tx, logger, {
    ...input,
    which: tx`org_id = ${input.orgId} and (processor_payment_id = ${input.paymentId} or id = ${input.chargeRef ?? ""})`,
  });
}

/**
 * The last attempt failed: the org moves to the free plan, once per invoice (renewal_downgrades).
 * At once, not at the next cycle: a customer who does not pay stops accruing paid-plan charges,
 * and what is unused of the paid plan's included credits for the running cycle ends.
 * The invoice stays open (it is still owed, and a top-up pays it first); a notice and a warn line.
 * A change of plan like any other (atOrgTime): after the org's ended cycles are closed, under its
 * lock, dated no earlier than what is decided for it. On its worker's own clock, one behind the
 * boundary made the ended month free after metering had granted the next month's credits, and a
 * cancel at a cycle's first instant left that cycle's credits uncharged.
 */
async function downgradeAfterFailedRenewal(ctx: BillingContext, invoiceId: string): Promise<RenewalStep> {
  const [owner] = await ctx.sql<{ org_id: string; anchor: number }[]>`
    select i.org_id, o.billing_anchor_day as anchor from invoices i join organizations o on o.id = i.org_id
    where i.id = ${invoiceId}`;
  if (!owner) throw new BillingError("not_found", `no invoice ${invoiceId}`);
  return atOrgTime(ctx, owner.org_id, owner.anchor, async (txc, now, decided) => {
    const tx = txc.sql;
    const [invoice] = await tx<InvoiceRow[]>`
      select id, org_id, number, status, amount_due, issued_at from invoices where id = ${invoiceId} for update`;
    if (invoice?.status !== "open" || invoice.amount_due <= 0n) return "not_open";
    const [sub] = await tx<{ plan_id: string; canceled_at: Date | null }[]>`
      select plan_id, canceled_at from subscriptions where org_id = ${invoice.org_id} for update`;
    const [recorded] = await tx`
      insert into renewal_downgrades (invoice_id, org_id, from_plan, created_at)
      values (${invoice.id}, ${invoice.org_id}, ${sub?.plan_id ?? "none"}, ${now}) on conflict (invoice_id) do nothing returning 1`;
    if (!recorded) return "already_downgraded";
    if (sub && !sub.canceled_at && sub.plan_id !== FREE_PLAN_ID) {
      let hasFree = true;
      try {
        planAt(ctx.catalog, FREE_PLAN_ID, now);
      } catch {
        hasFree = false;
      }
      // No free plan in the catalog: the paid plan ends instead, as a cancel would.
      if (hasFree) {
        await tx`update subscriptions set plan_id = ${FREE_PLAN_ID}, pending_plan_id = null where org_id = ${invoice.org_id}`;
        // The running cycle is charged the free plan now, so the paid plan's credits end with it.
        await endIncludedCredits(tx, invoice.org_id, now);
      } else
        await tx`update subscriptions set canceled_at = ${cancelInstant(now, owner.anchor, decided)}, pending_plan_id = null
                 where org_id = ${invoice.org_id}`;
    }
    const message = `invoice ${invoice.number} could not be charged after ${RENEWAL_SCHEDULE_DAYS.length} attempts; the organization is now on the free plan`;
    await tx`insert into billing_notices (id, org_id, kind, details, created_at)
             values (${newId("ntc")}, ${invoice.org_id}, 'renewal_failed',
                     ${tx.json({ invoice_id: invoice.id, from_plan: sub?.plan_id ?? null, message })}, ${now})`;
    ctx.logger.warn({ org_id: invoice.org_id, invoice_id: invoice.id, from_plan: sub?.plan_id ?? null }, message);
    return "downgraded";
  });
}

/**
 * The signed webhook credited a payment: if it is a renewal charge (by payment id, or our id in
 * its metadata), the attempt succeeded; returns its invoice, which the credit pays first.
 */
export async function renewalOfPayment(
  tx: TransactionSql,
  input: { orgId: string; paymentId: string; chargeRef: string | null; now: Date },
): Promise<string | null> {
  const [row] = await tx<{ invoice_id: string }[]>`
    update renewal_charges set status = 'succeeded', processor_payment_id = coalesce(processor_payment_id, ${input.paymentId}),
      updated_at = ${input.now}
    where org_id = ${input.orgId} and status <> 'succeeded'
      and (processor_payment_id = ${input.paymentId} or id = ${input.chargeRef ?? ""})
    returning invoice_id`;
  return row?.invoice_id ?? null;
}

/** Open invoices with an amount due: what the sweep asks collectRenewal about. */
export async function invoicesToCollect(ctx: BillingContext): Promise<string[]> {
  const rows = await ctx.sql<{ id: string }[]>`
    select i.id from invoices i
    where i.status = 'open' and i.amount_due > 0 and not exists (select 1 from renewal_downgrades d where d.invoice_id = i.id)
    order by i.issued_at limit 500`;
  return rows.map((r) => r.id);
}
