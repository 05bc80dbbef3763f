import type { Invoice } from "../invoices/invoice.js";
import { documentTime, PdfPage } from "./pdf-layout.js";

/**
 * An issued invoice as a PDF: number, status, dates, period, the billing details it was issued
 * with, its lines (with their quantities), subtotal, credits applied, amount due. Only what the
 * JSON of the same invoice says (GET /v1/billing/invoices/{id}).
 */
export async function invoicePdf(invoice: Invoice & { lines: NonNullable<Invoice["lines"]> }): Promise<Buffer> {
  const page = new PdfPage({ title: `Invoice ${invoice.number}`, createdAt: invoice.issuedAt ?? invoice.createdAt });
  page.heading("INVOICE", "Hanzo");
  page.facts([
    ["Invoice number", invoice.number],
    ["Status", invoice.status],
    ["Issued", invoice.issuedAt ? documentTime(invoice.issuedAt) : "not issued"],
    ["Period", `${documentTime(invoice.periodStart)} to ${documentTime(invoice.periodEnd)}`],
    ...(invoice.paidAt ? ([["Paid", documentTime(invoice.paidAt)]] as [string, string][]) : []),
    ...(invoice.voidedAt ? ([["Voided", documentTime(invoice.voidedAt)]] as [string, string][]) : []),
    ["Currency", "USD"],
  ]);
  page.billTo(invoice.billingDetails, invoice.orgId);
  page.table(
    invoice.lines.map((l) => {
      const quantities = Object.entries(l.quantities).map(([meter, q]) => `${meter}: ${q}`);
      const period =
        l.periodStart && l.periodEnd ? [`${documentTime(l.periodStart)} to ${documentTime(l.periodEnd)}`] : [];
      const detail = [...quantities, ...period].join(", ");
      return { description: l.description, ...(detail ? { detail } : {}), amount: l.amount };
    }),
  );
  page.totals([
    ["Subtotal", invoice.subtotal],
    ["Credits applied", invoice.creditsApplied],
    ["Amount due", invoice.amountDue],
  ]);
  page.note(
    "Usage is paid from cloud credits as it happens; credits applied is what credits paid of this invoice, amount due what remains. Amounts in USD, exact to the nano-dollar.",
  );
  return page.bytes();
}
