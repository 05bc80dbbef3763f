import PDFDocument from "pdfkit";
import { formatUsd } from "../../ledger/money.js";
import type { BillingDetailsSnapshot } from "./billing-details.js";

/**
 * The page furniture shared by invoice and credit-note PDFs (pdfkit, its built-in Helvetica: no
 * font files to ship). Everything printed comes from the same values the JSON shows; money goes
 * from bigint nano-USD to text in documentUsd, never through a float.
 */

const MARGIN = 50;
const PAGE_WIDTH = 595.28; // A4, points
const CONTENT_WIDTH = PAGE_WIDTH - 2 * MARGIN;
const AMOUNT_WIDTH = 140;

/** USD exact to the nano-dollar, with at least two decimals: 12.5 → "12.50", 0.000123 → "0.000123". */
export function documentUsd(nano: bigint): string {
  const exact = formatUsd(nano);
  const dot = exact.indexOf(".");
  if (dot < 0) return `${exact}.00`;
  return exact.length - dot - 1 < 2 ? `${exact}0` : exact;
}

/** A timestamp as documents print it: `2026-11-01 00:00 UTC` (minutes: cycles and notes are instants, not days). */
export function documentTime(d: Date): string {
  return `${d.toISOString().slice(0, 16).replace("T", " ")} UTC`;
}

export type DocumentRow = { description: string; detail?: string; amount: bigint };

/** A document being written: a cursor (y) that moves down, and a new page when the next block would not fit. */
export class PdfPage {
  readonly doc: PDFKit.PDFDocument;
  private y = MARGIN;

  constructor(info: { title: string; createdAt: Date }) {
    this.doc = new PDFDocument({
      size: "A4",
      margin: MARGIN,
      // Fixed dates: the same document renders to the same bytes.
      info: { Title: info.title, Author: "Hanzo Billing", CreationDate: info.createdAt, ModDate: info.createdAt },
    });
  }

  private room(height: number) {
    if (this.y + height > this.doc.page.height - MARGIN) {
      this.doc.addPage();
      this.y = MARGIN;
    }
  }

  heading(title: string, issuer: string) {
    this.doc.font("Helvetica-Bold").fontSize(20).text(title, MARGIN, this.y, { width: CONTENT_WIDTH, align: "right" });
    this.doc.font("Helvetica-Bold").fontSize(14).text(issuer, MARGIN, this.y, { width: CONTENT_WIDTH });
    this.y += 36;
  }

  /** Label: value pairs, one per line. */
  facts(rows: [string, string][]) {
    this.doc.font("Helvetica").fontSize(10);
    for (const [label, value] of rows) {
      this.room(16);
      this.doc.font("Helvetica-Bold").text(label, MARGIN, this.y, { width: 120 });
      this.doc.font("Helvetica").text(value, MARGIN + 120, this.y, { width: CONTENT_WIDTH - 120 });
      this.y += Math.max(14, this.doc.heightOfString(value, { width: CONTENT_WIDTH - 120 }) + 2);
    }
    this.y += 10;
  }

  billTo(details: BillingDetailsSnapshot | null, orgId: string) {
    this.room(100);
    this.doc.font("Helvetica-Bold").fontSize(10).text("Bill to", MARGIN, this.y);
    this.y += 14;
    const lines = details
      ? [
          details.legal_name,
          ...details.address_lines,
          [details.postal_code, details.city].filter(Boolean).join(" "),
          details.country,
          ...(details.tax_id ? [`Tax ID: ${details.tax_id}`] : []),
          ...(details.invoice_email ? [details.invoice_email] : []),
        ]
      : [`Organization ${orgId}`, "(no billing details on file when this document was issued)"];
    this.doc.font("Helvetica").fontSize(10);
    for (const line of lines) {
      this.room(14);
      this.doc.text(line, MARGIN, this.y, { width: CONTENT_WIDTH });
      this.y += 13;
    }
    this.y += 12;
  }

  text(label: string, value: string) {
    this.facts([[label, value]]);
  }

  /** The line items: description (and a smaller detail line) on the left, the amount on the right. */
  table(rows: DocumentRow[]) {
    const descWidth = CONTENT_WIDTH - AMOUNT_WIDTH - 10;
    this.room(30);
    this.doc.font("Helvetica-Bold").fontSize(10);
    this.doc.text("Description", MARGIN, this.y, { width: descWidth });
    this.doc.text("Amount (USD)", MARGIN + CONTENT_WIDTH - AMOUNT_WIDTH, this.y, {
      width: AMOUNT_WIDTH,
      align: "right",
    });
    this.y += 14;
    this.rule();
    for (const row of rows) {
      this.doc.font("Helvetica").fontSize(10);
      const descHeight = this.doc.heightOfString(row.description, { width: descWidth });
      this.doc.fontSize(8);
      const detailHeight = row.detail ? this.doc.heightOfString(row.detail, { width: descWidth }) : 0;
      this.room(descHeight + detailHeight + 8);
      this.doc.font("Helvetica").fontSize(10).text(row.description, MARGIN, this.y, { width: descWidth });
      this.doc.text(documentUsd(row.amount), MARGIN + CONTENT_WIDTH - AMOUNT_WIDTH, this.y, {
        width: AMOUNT_WIDTH,
        align: "right",
      });
      this.y += descHeight + 2;
      if (row.detail) {
        this.doc.fontSize(8).fillColor("#555555").text(row.detail, MARGIN, this.y, { width: descWidth });
        this.doc.fillColor("black");
        this.y += detailHeight + 2;
      }
      this.y += 4;
    }
    if (rows.length === 0) {
      this.doc.font("Helvetica").fontSize(10).text("No line items", MARGIN, this.y);
      this.y += 16;
    }
    this.rule();
  }

  /** Totals, right-aligned under the table; the last one in bold. */
  totals(rows: [string, bigint][]) {
    rows.forEach(([label, amount], i) => {
      this.room(16);
      const bold = i === rows.length - 1;
      this.doc.font(bold ? "Helvetica-Bold" : "Helvetica").fontSize(10);
      this.doc.text(label, MARGIN + CONTENT_WIDTH - AMOUNT_WIDTH - 160, this.y, { width: 160 });
      this.doc.text(documentUsd(amount), MARGIN + CONTENT_WIDTH - AMOUNT_WIDTH, this.y, {
        width: AMOUNT_WIDTH,
        align: "right",
      });
      this.y += 15;
    });
    this.y += 10;
  }

  note(text: string) {
    this.doc.font("Helvetica").fontSize(8).fillColor("#555555");
    this.room(this.doc.heightOfString(text, { width: CONTENT_WIDTH }) + 4);
    this.doc.text(text, MARGIN, this.y, { width: CONTENT_WIDTH });
    this.doc.fillColor("black");
    this.y += this.doc.heightOfString(text, { width: CONTENT_WIDTH }) + 6;
  }

  private rule() {
    this.doc
      .moveTo(MARGIN, this.y)
      .lineTo(MARGIN + CONTENT_WIDTH, this.y)
      .strokeColor("#999999")
      .stroke();
    this.y += 6;
  }

  /** Ends the document and returns its bytes. */
  async bytes(): Promise<Buffer> {
    const chunks: Buffer[] = [];
    const done = new Promise<Buffer>((resolve, reject) => {
      this.doc.on("data", (c: Buffer) => chunks.push(c));
      this.doc.on("end", () => resolve(Buffer.concat(chunks)));
      this.doc.on("error", reject);
    });
    this.doc.end();
    return done;
  }
}
