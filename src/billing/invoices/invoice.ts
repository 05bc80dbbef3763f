import type { BillingDetailsSnapshot } from "../documents/billing-details.js";

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
  /** The org's billing details when the invoice was issued; null when none were set then. */
  billingDetails: BillingDetailsSnapshot | null;
  lines?: InvoiceLine[];
};

/** An `invoices` row as postgres.js returns it. */
export type InvoiceRow = {
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
  billing_details: BillingDetailsSnapshot | null;
};

export const toInvoice = (r: InvoiceRow): Invoice => ({
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
  billingDetails: r.billing_details ?? null,
});
