import type { TransactionSql } from "../../db/client.js";
import { BillingError } from "../../errors.js";
import { newId } from "../../ids.js";
import { fingerprint } from "../../ledger/post-transaction.js";
import { formatUsd } from "../../ledger/money.js";
import type { Processor } from "../auto-topup/card-charge.js";
import { at, withTransaction, type BillingContext } from "../context.js";
import { billingDetailsSnapshot } from "../documents/billing-details.js";
import { emitEvent } from "../events/emit.js";
import { creditNoteIssuedEvent } from "../events/facts.js";
import { grantCredits } from "../grants.js";
import { lockOrgs } from "../org-locks.js";
import { NANO_USD_PER_CENT } from "../payments/card-payment.js";
import {
  type CreditNote,
  type CreditNoteLine,
  creditableLeft,
  loadCreditNote,
  type RefundMethod,
} from "./credit-note.js";
import { cardPaymentOfInvoice } from "./invoice-card-payment.js";
import { refundCreditNoteToCard } from "./refund-to-card.js";

export type IssueCreditNoteInput = {
  invoiceId: string;
  lines: CreditNoteLine[];
  reason: string;
  refund: RefundMethod;
  /** Scoped to the invoice's organization, like every idempotency key of an org's money. */
  idempotencyKey: string;
};

/**
 * Issues a credit note on an issued invoice (open or paid), once per idempotency key: its own
 * gap-free number (CN-000001), the lines and reason, the org's billing details as they are now.
 * The invoice is never changed. Under the invoice's row lock, so concurrent notes on one invoice
 * take turns: together they never credit more than the invoice's subtotal.
 *
 * refund 'credits': the total is granted back as credits (source refund_credit) in the same
 * transaction. refund 'card': only for an invoice whose amount due a card payment paid, at most
 * that amount (less earlier card notes on it), in whole cents; the note commits with a pending
 * refund, then the processor refunds it with the idempotency key `credit-note-refund:<note>`,
 * so a retry of this call (same key) finishes a refund the processor did not answer, and never
 * refunds twice.
 */
export async function issueCreditNote(
  ctx: BillingContext & { processor?: Processor | null },
  input: IssueCreditNoteInput,
): Promise<{ creditNote: CreditNote; created: boolean }> {
  if (input.lines.length === 0)
    throw new BillingError("invalid_request", "a credit note needs at least one line", { details: { param: "lines" } });
  input.lines.forEach((l, i) => {
    if (l.amount <= 0n)
      throw new BillingError("invalid_request", "a line's amount must be greater than zero", {
        details: { param: `lines.${i}.amount` },
      });
  });
  const total = input.lines.reduce((s, l) => s + l.amount, 0n);
  if (input.refund === "card" && total % NANO_USD_PER_CENT !== 0n)
    throw new BillingError("invalid_request", "a card refund is whole cents: the lines must sum to whole cents", {
      details: { param: "lines" },
    });
  if (input.refund === "card" && !ctx.processor)
    throw new BillingError("not_configured", "card refunds need the card processor (STRIPE_SECRET_KEY is not set)");
  const requestFingerprint = fingerprint({
    invoice: input.invoiceId,
    lines: input.lines,
    reason: input.reason,
    refund: input.refund,
  });
  const now = ctx.clock();

  const issued = await withTransaction(at(ctx, now), async (txc) => {
    const tx = txc.sql;
    // The organization's lock, then the invoice's, in the order every path that moves an org's
    // money and then touches its invoices takes them (a top-up paying open invoices, a cycle's
    // close): the invoice's first deadlocked against a card top-up (40P01). An invoice's
    // organization never changes, so it is read before either lock.
    const [owner] = await tx<{ org_id: string }[]>`select org_id from invoices where id = ${input.invoiceId}`;
    if (!owner) throw new BillingError("not_found", `no invoice ${input.invoiceId}`);
    await lockOrgs(tx, [owner.org_id], now);
    // A replay of the same key queues behind the first call here, then sees its note.
    const [invoice] = await tx<
      { id: string; number: string | null; org_id: string; status: string; subtotal: bigint; amount_due: bigint }[]
    >`select id, number, org_id, status, subtotal, amount_due from invoices where id = ${input.invoiceId} for update`;
    if (!invoice) throw new BillingError("not_found", `no invoice ${input.invoiceId}`);
    const [replay] = await tx<{ id: string; request_fingerprint: string }[]>`
      select id, request_fingerprint from credit_notes where org_id = ${invoice.org_id} and idempotency_key = ${input.idempotencyKey}`;
    if (replay) {
      if (replay.request_fingerprint !== requestFingerprint)
        throw new BillingError(
          "idempotency_key_reused",
          "this idempotency key was already used for a different credit note",
        );
      return { id: replay.id, created: false };
    }
    if (invoice.status === "draft" || !invoice.number)
      throw new BillingError("conflict", `invoice ${invoice.id} is not issued: only an issued invoice can be credited`);
    if (invoice.status === "void")
      throw new BillingError("conflict", `invoice ${invoice.number} is void: nothing on it is owed or paid`);

    // A note whose card refund failed (final) gave nothing back: the same correction may be issued
    // again, to credits or to the card (as credit_notes_within_invoice counts them).
    const earlier = await tx<{ total: bigint; refund_method: RefundMethod }[]>`
      select n.total, n.refund_method from credit_notes n left join credit_note_refunds r on r.credit_note_id = n.id
      where n.invoice_id = ${invoice.id} and r.status is distinct from 'failed'`;
    const left = creditableLeft(
      invoice.subtotal,
      earlier.map((e) => e.total),
    );
    if (total > left)
      throw new BillingError(
        "credit_exceeds_invoice",
        `invoice ${invoice.number} has ${formatUsd(left)} USD left to credit (its subtotal less earlier credit notes); this note totals ${formatUsd(total)}`,
        { details: { param: "lines" } },
      );
    const payment = input.refund === "card" ? await cardPaymentOfInvoice(tx, invoice.id) : null;
    if (input.refund === "card") {
      if (!payment)
        throw new BillingError(
          "conflict",
          `invoice ${invoice.number} was not paid by card: refund to credits instead`,
          {
            details: { param: "refund" },
          },
        );
      const refundedByCard = earlier.filter((e) => e.refund_method === "card").reduce((s, e) => s + e.total, 0n);
      const cardLeft = minBig(invoice.amount_due - refundedByCard, payment.refundableMinor * NANO_USD_PER_CENT);
      if (total > cardLeft)
        throw new BillingError(
          "credit_exceeds_invoice",
          `at most ${formatUsd(cardLeft > 0n ? cardLeft : 0n)} USD of invoice ${invoice.number} can go back to the card that paid it; refund the rest to credits`,
          { details: { param: "lines" } },
        );
    }

    const id = newId("cn");
    const number = await nextCreditNoteNumber(tx);
    const details = await billingDetailsSnapshot(tx, invoice.org_id);
    // The key is the organization's, and the lock above is the invoice's: a request with the
    // same key on another invoice of the organization may have taken the key since the replay
    // check. Its fingerprint names another invoice, so that is a reuse (the number taken here
    // goes back with the rollback).
    const inserted = await tx`
      insert into credit_notes (id, number, org_id, invoice_id, reason, refund_method, total, billing_details, idempotency_key, request_fingerprint, issued_at)
      values (${id}, ${number}, ${invoice.org_id}, ${invoice.id}, ${input.reason}, ${input.refund}, ${total.toString()},
              ${details ? tx.json(details) : null}, ${input.idempotencyKey}, ${requestFingerprint}, ${now})
      on conflict (org_id, idempotency_key) do nothing
      returning 1`;
    if (inserted.length === 0)
      throw new BillingError(
        "idempotency_key_reused",
        "this idempotency key was already used for a different credit note",
      );
    const rows = input.lines.map((l) => ({
      credit_note_id: id,
      description: l.description,
      amount: l.amount.toString(),
    }));
    await tx`insert into credit_note_lines ${tx(rows, "credit_note_id", "description", "amount")}`;
    if (input.refund === "credits") {
      await grantCredits(txc, {
        orgId: invoice.org_id,
        amount: total,
        reason: `Credit note ${number} on invoice ${invoice.number}: ${input.reason}`,
        idempotencyKey: `credit-note:${id}`,
        source: "refund_credit",
        sourceId: id,
      });
    } else if (payment) {
      await tx`
        insert into credit_note_refunds (credit_note_id, org_id, payment_id, amount_minor, status, created_at, updated_at)
        values (${id}, ${invoice.org_id}, ${payment.paymentId}, ${(total / NANO_USD_PER_CENT).toString()}, 'pending', ${now}, ${now})`;
    }
    await emitEvent(
      tx,
      creditNoteIssuedEvent({
        id,
        number,
        orgId: invoice.org_id,
        invoiceId: invoice.id,
        invoiceNumber: invoice.number,
        reason: input.reason,
        refundMethod: input.refund,
        total,
        issuedAt: now,
      }),
    );
    return { id, created: true };
  });

  // After the commit, and on every replay until it is settled: the card refund at the processor.
  let note = await loadCreditNote(ctx.sql, { id: issued.id });
  if (note.cardRefund?.status === "pending" && ctx.processor) {
    await refundCreditNoteToCard({ ...ctx, processor: ctx.processor }, { creditNoteId: note.id });
    note = await loadCreditNote(ctx.sql, { id: issued.id });
  }
  return { creditNote: note, created: issued.created };
}

/** CN-000001, CN-000002, … without gaps: the counter row is taken back if the transaction rolls back. */
async function nextCreditNoteNumber(tx: TransactionSql): Promise<string> {
  const [row] = await tx<{ number: string }[]>`
    update credit_note_number_counter set last_number = last_number + 1
    returning 'CN-' || lpad(last_number::text, greatest(6, length(last_number::text)), '0') as number`;
  if (!row) throw new Error("credit_note_number_counter has no row (migration 0032)");
  return row.number;
}

const minBig = (a: bigint, b: bigint) => (a < b ? a : b);
