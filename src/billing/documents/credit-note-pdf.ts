import type { CreditNote } from "../credit-notes/credit-note.js";
import { documentTime, PdfPage } from "./pdf-layout.js";

/**
 * A credit note as a PDF: its number, date, the invoice it corrects (number and period), the
 * reason, how the amount goes back, the billing details it was issued with, lines and total. Only
 * what the JSON of the same note says (GET /v1/billing/credit-notes/{id}).
 */
export async function creditNotePdf(note: CreditNote): Promise<Buffer> {
  const page = new PdfPage({ title: `Credit note ${note.number}`, createdAt: note.issuedAt });
  page.heading("CREDIT NOTE", "Hanzo");
  page.facts([
    ["Credit note number", note.number],
    ["Issued", documentTime(note.issuedAt)],
    ["Credits invoice", note.invoiceNumber],
    ["Invoice period", `${documentTime(note.invoicePeriodStart)} to ${documentTime(note.invoicePeriodEnd)}`],
    ["Reason", note.reason],
    ["Refunded as", note.refundMethod === "card" ? "refund to the card that paid the invoice" : "cloud credits"],
    ["Currency", "USD"],
  ]);
  page.billTo(note.billingDetails, note.orgId);
  page.table(note.lines.map((l) => ({ description: l.description, amount: l.amount })));
  page.totals([["Total credited", note.total]]);
  page.note(`This credit note corrects invoice ${note.invoiceNumber}, which stays as issued.`);
  return page.bytes();
}
