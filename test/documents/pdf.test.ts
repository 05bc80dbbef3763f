import { describe, expect } from "vitest";
import { documentTime, documentUsd } from "../../src/billing/documents/pdf-layout.js";
import { parseUsd } from "../../src/ledger/money.js";
import { manualClock } from "../support/app.js";
import { appTest as it } from "../support/fixtures.js";
import { pdfLines } from "../support/pdf-text.js";
import { creditNote, issueInvoice } from "./invoices.js";

/**
 * GET /v1/billing/invoices/{id}.pdf and /v1/billing/credit-notes/{id}.pdf: pdf.js reads the text
 * back, and every number in it is one the JSON of the same document says, and every money field
 * of the JSON is printed.
 */
describe("invoice and credit note PDFs", () => {
  const clock = manualClock(new Date("2026-10-05T10:00:00Z"));
  it.scoped({ appOptions: { clock } });

  async function pdf(
    app: { app: { request: (p: string, i: RequestInit) => Response | Promise<Response> } },
    path: string,
    key: string,
  ) {
    const res = await app.app.request(path, { headers: { authorization: `Bearer ${key}` } });
    expect(res.status, path).toBe(200);
    expect(res.headers.get("content-type")).toBe("application/pdf");
    const bytes = new Uint8Array(await res.arrayBuffer());
    expect(Buffer.from(bytes.subarray(0, 5)).toString()).toBe("%PDF-");
    return pdfLines(bytes);
  }
  /** Every run of digits in the text (dates, numbers, amounts, quantities): what must come from the JSON. */
  const numbersIn = (lines: string[]) => lines.join("\n").match(/\d+(?:\.\d+)?/g) ?? [];
  const line = (lines: string[], label: string) => lines.find((l) => l.startsWith(label));

  it("an invoice PDF says what its JSON says", async ({ app }) => {
    const org = await app.createOrg("Pdf Co");
    await app.grant(org.id, "3.5");
    await app.call("PUT", "/v1/billing/details", {
      key: org.orgKey,
      body: {
        legal_name: "Pdf Co Ltd",
        address_lines: ["1 Long Street", "Floor 2"],
        city: "London",
        postal_code: "EC1A 1BB",
        country: "GB",
        tax_id: "GB123456789",
        invoice_email: "billing@pdf.example",
      },
    });
    const invoice = await issueInvoice(app, clock, org, { charge: "12.345", usage: true });
    expect(BigInt(invoice.amount_due_nano_usd)).toBeGreaterThan(0n);
    const lines = await pdf(app, `/v1/billing/invoices/${invoice.id}.pdf`, org.orgKey);

    expect(line(lines, "Invoice number")).toBe(`Invoice number ${invoice.number}`);
    expect(line(lines, "Status")).toBe(`Status ${invoice.status}`);
    expect(line(lines, "Issued")).toBe(`Issued ${documentTime(new Date(invoice.issued_at))}`);
    expect(line(lines, "Period")).toBe(
      `Period ${documentTime(new Date(invoice.period.start))} to ${documentTime(new Date(invoice.period.end))}`,
    );
    for (const [label, field] of [
      ["Subtotal", "subtotal"],
      ["Credits applied", "credits_applied"],
      ["Amount due", "amount_due"],
    ] as const) {
      const printed = line(lines, label)?.slice(label.length + 1) ?? "";
      expect(parseUsd(printed), label).toBe(BigInt(invoice[`${field}_nano_usd`]));
    }
    const d = invoice.billing_details as Record<string, string | string[]>;
    for (const text of [d.legal_name, ...(d.address_lines as string[]), `${d.postal_code} ${d.city}`, d.country])
      expect(lines).toContain(text);
    expect(lines).toContain(`Tax ID: ${d.tax_id}`);
    expect(lines).toContain(d.invoice_email);
    // Each line item: its description with its amount, and its quantities beneath.
    expect(invoice.lines.length).toBe(2);
    for (const l of invoice.lines) {
      expect(lines).toContain(`${l.description} ${documentUsd(BigInt(l.amount_nano_usd))}`);
      for (const [meter, q] of Object.entries(l.quantities as Record<string, string>))
        expect(lines.join("\n")).toContain(`${meter}: ${q}`);
    }
    // Every number printed is one of the JSON's (as its value, in its date, or in the number).
    const json = JSON.stringify(invoice);
    const allowed = new Set([
      ...(json.match(/\d+(?:\.\d+)?/g) ?? []),
      ...invoice.lines.map((l: { amount_nano_usd: string }) => documentUsd(BigInt(l.amount_nano_usd))),
      ...["subtotal", "credits_applied", "amount_due"].map((f) => documentUsd(BigInt(invoice[`${f}_nano_usd`]))),
      ...[invoice.issued_at, invoice.paid_at, invoice.period.start, invoice.period.end]
        .filter(Boolean)
        .flatMap((t: string) => documentTime(new Date(t)).match(/\d+/g) ?? []),
    ]);
    expect(numbersIn(lines).filter((n) => !allowed.has(n))).toEqual([]);
  });

  it("a credit note PDF says what its JSON says, and names the invoice it corrects", async ({ app }) => {
    const org = await app.createOrg("Pdf Notes");
    await app.grant(org.id, "100");
    const invoice = await issueInvoice(app, clock, org, { charge: "40" });
    const res = await creditNote(app, invoice.id, {
      lines: [
        { description: "Duplicate seat", amount: "7.25" },
        { description: "Rounding", amount: "0.000000001" },
      ],
      reason: "Seat billed twice",
    });
    expect(res.status, res.text).toBe(201);
    const note = res.json;
    const lines = await pdf(app, `/v1/billing/credit-notes/${note.id}.pdf`, org.orgKey);
    expect(line(lines, "Credit note number")).toBe(`Credit note number ${note.number}`);
    expect(line(lines, "Credits invoice")).toBe(`Credits invoice ${invoice.number}`);
    expect(line(lines, "Reason")).toBe("Reason Seat billed twice");
    expect(line(lines, "Issued")).toBe(`Issued ${documentTime(new Date(note.issued_at))}`);
    expect(line(lines, "Invoice period")).toBe(
      `Invoice period ${documentTime(new Date(note.invoice_period.start))} to ${documentTime(new Date(note.invoice_period.end))}`,
    );
    expect(parseUsd(line(lines, "Total credited")?.slice("Total credited ".length) ?? "")).toBe(
      BigInt(note.total_nano_usd),
    );
    for (const l of note.lines) expect(lines).toContain(`${l.description} ${documentUsd(BigInt(l.amount_nano_usd))}`);
    const allowed = new Set([
      ...(JSON.stringify(note).match(/\d+(?:\.\d+)?/g) ?? []),
      // No billing details were set: the note names the organization by its id.
      ...(org.id.match(/\d+/g) ?? []),
      ...note.lines.map((l: { amount_nano_usd: string }) => documentUsd(BigInt(l.amount_nano_usd))),
      documentUsd(BigInt(note.total_nano_usd)),
      ...[note.issued_at, note.invoice_period.start, note.invoice_period.end].flatMap(
        (t: string) => documentTime(new Date(t)).match(/\d+/g) ?? [],
      ),
    ]);
    expect(numbersIn(lines).filter((n) => !allowed.has(n))).toEqual([]);
  });

  it("another org's document, an unknown id and a malformed one are 4xx in the envelope", async ({ app }) => {
    const org = await app.createOrg("Owner");
    await app.grant(org.id, "10");
    const invoice = await issueInvoice(app, clock, org, { charge: "1" });
    const other = await app.createOrg("Stranger");
    for (const [path, key, status] of [
      [`/v1/billing/invoices/${invoice.id}.pdf`, other.orgKey, 404],
      ["/v1/billing/invoices/inv_nope.pdf", org.orgKey, 404],
      ["/v1/billing/credit-notes/cn_nope.pdf", org.orgKey, 404],
      ["/v1/billing/invoices/a%20b.pdf", org.orgKey, 400],
      [`/v1/billing/invoices/${invoice.id}.pdf`, null, 401],
    ] as const) {
      const res = await app.call("GET", path, { key });
      expect(res.status, path).toBe(status);
      expect(res.json.error).toMatchObject({ code: expect.any(String), request_id: expect.any(String) });
    }
  });
});
