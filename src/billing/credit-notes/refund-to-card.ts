import Stripe from "stripe";
import { BillingError } from "../../errors.js";
import { newId } from "../../ids.js";
import { SystemAccounts } from "../../ledger/accounts.js";
import { postTransfer } from "../../ledger/post-transaction.js";
import type { Processor } from "../auto-topup/card-charge.js";
import { withTransaction, type BillingContext } from "../context.js";
import { centsToNanoUsd, lockPayment } from "../payments/card-payment.js";
import { reapplyNewestRefund } from "../payments/reverse-card-topup.js";
import { callProcessor } from "../payments/processor-client.js";
import { retryOnDeadlock } from "../../db/deadlock-retry.js";
import { lockOrgAndReferrer, referralTopupReversed } from "../referrals/topup-reversed.js";

export type CardRefundOutcome = "succeeded" | "failed" | "not_pending";

type PendingRefund = { payment_id: string; amount_minor: bigint; org_id: string; number: string; created_at: Date };
/** What the processor said; `detail` (its message) goes to the log only. */
type RefundAnswer =
  | { status: "succeeded"; refundId: string }
  | { status: "failed"; refundId: string | null; failure: string; detail?: string };

/**
 * Refunds a 'card' credit note's total to the payment that paid its invoice, at most once: the
 * processor call carries the idempotency key `credit-note-refund:<note>`, so repeating it (a
 * retry after no answer, two retries at once) returns the same refund. The answer is recorded
 * once (the row leaves 'pending' once) with a `credit_note` ledger transaction, revenue → card,
 * keyed by the note: the money leaves what the invoice earned. The org's credits are untouched:
 * the invoice was paid from them and this gives the payment back, not the credits. A refund of
 * the payment that qualified a referral cancels or claws back its reward (referralTopupReversed).
 *
 * A processor that does not answer leaves the refund pending and throws 503
 * processor_unavailable (the caller retries with the same Idempotency-Key, within
 * CARD_REFUND_RETRY_FOR_MS of the note: later is 409, for an operator to settle by hand); one
 * that refuses it (e.g. the charge was already refunded at the processor's dashboard) marks it
 * failed with the processor's error code, for an operator to settle another way.
 */
export async function refundCreditNoteToCard(
  ctx: BillingContext & { processor: Processor },
  input: { creditNoteId: string },
): Promise<CardRefundOutcome> {
  const [pending] = await ctx.sql<PendingRefund[]>`
    select r.payment_id, r.amount_minor, r.org_id, n.number, r.created_at from credit_note_refunds r
    join credit_notes n on n.id = r.credit_note_id
    where r.credit_note_id = ${input.creditNoteId} and r.status = 'pending'`;
  if (!pending) return "not_pending";
  // Past the processor's memory of the key (Stripe: 24 h), a retry could refund a second time.
  if (ctx.clock().getTime() - pending.created_at.getTime() > CARD_REFUND_RETRY_FOR_MS)
    throw new BillingError(
      "conflict",
      `the card refund of credit note ${pending.number} has been pending for over 23 hours: the processor may have forgotten its idempotency key, so it is not sent again; settle it by hand`,
    );
  let answer: RefundAnswer;
  try {
    const refund = await callProcessor("refund", () =>
      ctx.processor.refunds.create(
        {
          payment_intent: pending.payment_id,
          amount: Number(pending.amount_minor),
          reason: "requested_by_customer",
          metadata: { hanzo_org_id: pending.org_id, hanzo_credit_note: input.creditNoteId },
        },
        { idempotencyKey: `credit-note-refund:${input.creditNoteId}` },
      ),
    );
    answer =
      refund.status === "failed" || refund.status === "canceled"
        ? { status: "failed", refundId: refund.id, failure: `refund ${refund.status}` }
        : { status: "succeeded", refundId: refund.id };
  } catch (err) {
    // Refused by the processor (4xx): final. Anything else (unavailable: 503) stays pending.
    if (!(err instanceof Stripe.errors.StripeInvalidRequestError || err instanceof Stripe.errors.StripeCardError))
      throw err;
    // The org is shown the processor's code only: its message names the processor's ids (the
    // charge's), which no answer of ours carries. The operator's log line has the message.
    answer = {
      status: "failed",
      refundId: null,
      failure: `refused by the card processor: ${err.code ?? err.type}`,
      detail: err.message,
    };
  }
  const now = ctx.clock();
  // Retried on deadlock as the processor's events are: a charge id learnt since it was read below
  // may be locked out of order by the re-applied refund (the transaction then runs again whole).
  return retryOnDeadlock(() => recordAnswer(ctx, input.creditNoteId, pending, answer, now));
}

/** Records the processor's answer once (the row leaves 'pending' once), with its ledger movement. */
async function recordAnswer(
  ctx: BillingContext,
  creditNoteId: string,
  pending: PendingRefund,
  answer: RefundAnswer,
  now: Date,
): Promise<CardRefundOutcome> {
  return withTransaction(ctx, async (txCtx) => {
    const { sql: tx, logger } = txCtx;
    // The refund's row under the payment's locks, as the processor's refund events are applied:
    // the payment's and its charges' (a failure re-applies a refund event, which takes the charge's
    // too), all at once in the events' sorted order, else the two deadlock.
    const [charges] = await tx<{ charge_id: string | null; charge_refunded_charge_id: string | null }[]>`
      select charge_id, charge_refunded_charge_id from card_topups where payment_id = ${pending.payment_id}`;
    await lockPayment(tx, [pending.payment_id, charges?.charge_id, charges?.charge_refunded_charge_id]);
    const [row] = await tx<{ amount_minor: bigint }[]>`
      select amount_minor from credit_note_refunds where credit_note_id = ${creditNoteId} and status = 'pending' for update`;
    if (!row) return "not_pending" as const;
    let ledgerTransactionId: string | null = null;
    if (answer.status === "succeeded") {
      // Money went back to the card of that payment: if it was the org's qualifying top-up, its
      // referral is canceled (before payout) or clawed back (after), as for any refund of it.
      await lockOrgAndReferrer(tx, { orgId: pending.org_id, kind: "card", ref: pending.payment_id, now });
      await referralTopupReversed(tx, { kind: "card", ref: pending.payment_id, now });
      ({ transactionId: ledgerTransactionId } = await postTransfer(tx, {
        kind: "credit_note",
        orgId: pending.org_id,
        idempotencyKey: `card-refund:${creditNoteId}`,
        description: `Credit note ${pending.number} refunded to the card`,
        metadata: { credit_note_id: creditNoteId, refund: "card" },
        from: SystemAccounts.revenue,
        to: SystemAccounts.card,
        amount: centsToNanoUsd(row.amount_minor),
        createdAt: now,
      }));
    } else {
      logger.warn(
        { org_id: pending.org_id, credit_note_id: creditNoteId, failure: answer.failure, detail: answer.detail },
        "card refund of a credit note refused by the processor: settle it another way (e.g. credits)",
      );
    }
    await tx`
      update credit_note_refunds set status = ${answer.status}, processor_refund_id = ${answer.refundId},
        failure = ${answer.status === "failed" ? answer.failure : null}, ledger_transaction_id = ${ledgerTransactionId}, updated_at = ${now}
      where credit_note_id = ${creditNoteId}`;
    // A refund event of the charge applied while this refund was pending left its amount out of
    // what others refunded. It was never made: that event is applied again, now counting it.
    if (answer.status === "failed") await reapplyNewestRefund(txCtx, pending.payment_id);
    return answer.status;
  });
}

/**
 * Credit notes whose card refund is still pending a minute after it was last touched: the
 * processor's answer was lost (503 processor_unavailable) and nobody sent the request again. The
 * maintenance sweep asks again for each (refundCreditNoteToCard, same idempotency key: the same
 * refund), so a refund the note promised is made and recorded without an operator's retry. A
 * minute, not less: the issuing request may still be waiting on the processor. Only within
 * CARD_REFUND_RETRY_FOR_MS of the note: Stripe keeps an idempotency key 24 hours, and a retry once it
 * forgot the key could make a second refund. An older one gets an operator alert (once) instead.
 */
export async function pendingCardRefunds(ctx: BillingContext, input: { olderThan: Date }): Promise<string[]> {
  const now = ctx.clock();
  const since = new Date(now.getTime() - CARD_REFUND_RETRY_FOR_MS);
  // Those past it and not yet alerted, apart: left in one list, they would fill its first rows for ever.
  const stale = await ctx.sql<{ credit_note_id: string }[]>`
    select r.credit_note_id from credit_note_refunds r
    where r.status = 'pending' and r.created_at < ${since}
      and not exists (select 1 from operator_alerts a where a.kind = 'card_refund_left_pending' and a.subject = r.credit_note_id)
    limit 500`;
  for (const { credit_note_id } of stale) {
    const alerted = await ctx.sql`
      insert into operator_alerts (id, kind, subject, details, created_at)
      values (${newId("alert")}, 'card_refund_left_pending', ${credit_note_id},
              ${ctx.sql.json({ message: "card refund pending over 23 hours: not sent again (the processor may have forgotten its key); settle it by hand" })}, ${now})
      on conflict (kind, subject) do nothing returning 1`;
    if (alerted.length > 0)
      ctx.logger.error({ credit_note_id }, "credit note's card refund pending over 23 hours: settle it by hand");
  }
  const due = await ctx.sql<{ credit_note_id: string }[]>`
    select credit_note_id from credit_note_refunds
    where status = 'pending' and updated_at <= ${input.olderThan} and created_at >= ${since}
    order by updated_at limit 500`;
  return due.map((r) => r.credit_note_id);
}

/** How long after a credit note its pending card refund is sent again (the sweep, a retry): under Stripe's 24 h key memory. */
export const CARD_REFUND_RETRY_FOR_MS = 23 * 3_600_000;
