import type { Sql, TransactionSql } from "../../db/client.js";
import { BillingError } from "../../errors.js";
import type { BillingDetailsSnapshot } from "../documents/billing-details.js";

export type RefundMethod = "credits" | "card";
export type CreditNoteLine = { description: string; amount: bigint };
export type CardRefundStatus = "pending" | "succeeded" | "failed";

export type CreditNote = {
  id: string;
  number: string;
  orgId: string;
  invoiceId: string;
  invoiceNumber: string;
  invoicePeriodStart: Date;
  invoicePeriodEnd: Date;
  reason: string;
  refundMethod: RefundMethod;
  total: bigint;
  lines: CreditNoteLine[];
  /** The org's billing details when the note was issued; null when none were set then. */
  billingDetails: BillingDetailsSnapshot | null;
  issuedAt: Date;
  /** 'credits': the refund_credit grant made with the note. */
  grantId: string | null;
  /** 'card': the refund at the processor, pending until it answers. */
  cardRefund: { status: CardRefundStatus; failure: string | null } | null;
};

type NoteRow = {
  id: string;
  number: string;
  org_id: string;
  invoice_id: string;
  invoice_number: string;
  invoice_period_start: Date;
  invoice_period_end: Date;
  reason: string;
  refund_method: RefundMethod;
  total: bigint;
  billing_details: BillingDetailsSnapshot | null;
  issued_at: Date;
  grant_id: string | null;
  refund_status: CardRefundStatus | null;
  refund_failure: string | null;
};

const SELECT_NOTES = (sql: Sql | TransactionSql) => sql`
  select n.id, n.number, n.org_id, n.invoice_id, i.number as invoice_number, i.period_start as invoice_period_start, i.period_end as invoice_period_end, n.reason, n.refund_method, n.total,
    n.billing_details, n.issued_at, g.id as grant_id, r.status as refund_status, r.failure as refund_failure
  from credit_notes n
  join invoices i on i.id = n.invoice_id
  left join credit_grants g on g.source = 'refund_credit' and g.source_id = n.id and g.org_id = n.org_id
  left join credit_note_refunds r on r.credit_note_id = n.id`;

async function withLines(sql: Sql | TransactionSql, rows: NoteRow[]): Promise<CreditNote[]> {
  if (rows.length === 0) return [];
  const lines = await sql<{ credit_note_id: string; description: string; amount: bigint }[]>`
    select credit_note_id, description, amount from credit_note_lines
    where credit_note_id = any(${rows.map((r) => r.id)}) order by id`;
  return rows.map((r) => ({
    id: r.id,
    number: r.number,
    orgId: r.org_id,
    invoiceId: r.invoice_id,
    invoiceNumber: r.invoice_number,
    invoicePeriodStart: r.invoice_period_start,
    invoicePeriodEnd: r.invoice_period_end,
    reason: r.reason,
    refundMethod: r.refund_method,
    total: r.total,
    lines: lines
      .filter((l) => l.credit_note_id === r.id)
      .map((l) => ({ description: l.description, amount: l.amount })),
    billingDetails: r.billing_details ?? null,
    issuedAt: r.issued_at,
    grantId: r.grant_id,
    cardRefund: r.refund_status ? { status: r.refund_status, failure: r.refund_failure } : null,
  }));
}

/** One credit note with its lines; `orgId` given, another org's note is simply not found. */
export async function loadCreditNote(
  sql: Sql | TransactionSql,
  input: { id: string; orgId?: string },
): Promise<CreditNote> {
  const rows = await sql<NoteRow[]>`
    ${SELECT_NOTES(sql)} where n.id = ${input.id} ${input.orgId ? sql`and n.org_id = ${input.orgId}` : sql``}`;
  const [note] = await withLines(sql, rows);
  if (!note) throw new BillingError("not_found", `no credit note ${input.id}`);
  return note;
}

/** The org's credit notes, newest first; `before` is the id the previous page ended with. */
export async function listCreditNoteRows(
  sql: Sql | TransactionSql,
  input: { orgId: string; limit: number; before?: string },
): Promise<{ data: CreditNote[]; nextCursor: string | null }> {
  const rows = await sql<NoteRow[]>`
    ${SELECT_NOTES(sql)} where n.org_id = ${input.orgId}
    ${
      input.before
        ? sql`and (n.issued_at, n.id) < (select issued_at, id from credit_notes where id = ${input.before} and org_id = ${input.orgId})`
        : sql``
    }
    order by n.issued_at desc, n.id desc limit ${input.limit + 1}`;
  const page = await withLines(sql, rows.slice(0, input.limit));
  const last = page.at(-1);
  return { data: page, nextCursor: rows.length > input.limit && last ? last.id : null };
}

/**
 * What is left to credit on an invoice: its subtotal less the notes already issued on it, never
 * below zero. A new note may credit at most this (the database checks the same on insert).
 */
export function creditableLeft(subtotal: bigint, earlierNotes: readonly bigint[]): bigint {
  const left = earlierNotes.reduce((s, t) => s - t, subtotal);
  return left > 0n ? left : 0n;
}
