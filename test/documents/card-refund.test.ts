import { describe, expect } from "vitest";
import { cardTest as it, payOnPage, requestTopup, topupBody } from "../support/fake-processor.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import { creditNote, issueInvoice } from "./invoices.js";

/**
 * Credit notes refunded to the card (src/billing/credit-notes/refund-to-card.ts) against the fake
 * processor through the real SDK: one refund at the processor however often the call is retried,
 * the processor's own charge.refunded for it takes nothing from the org's credits, and only an
 * invoice a card paid can be refunded to a card, never beyond what the card paid.
 */
describe("credit note refunded to the card", () => {
  it("a refund whose answer was lost is finished by the retry, once at the processor; credits untouched", async ({
    app,
    clock,
    db,
    processor,
  }) => {
    const org = await app.createOrg("Card refunds");
    const invoice = await issueInvoice(app, clock, org, { charge: "30" });
    expect(invoice).toMatchObject({ status: "open", amount_due_nano_usd: "30000000000" });
    // Paid by a card top-up of 30: the credit pays the open invoice first.
    const topup = await requestTopup(app, org.orgKey, topupBody({ amount: "30.00" }));
    expect(topup.status, topup.text).toBe(201);
    expect((await payOnPage(topup.json.url)).status).toBe(303);
    await processor.idle();
    expect((await app.call("GET", `/v1/billing/invoices/${invoice.id}`, { key: org.orgKey })).json.status).toBe("paid");
    const balance = await app.balanceNano(org.orgKey);

    // The processor makes the refund, and no answer arrives (nor to the SDK's own retries, same key).
    processor.fail({ kind: "unreachable", match: /^POST \/v1\/refunds$/, after: true });
    const body = {
      lines: [{ description: "Overcharge", amount: "10.00" }],
      reason: "Wrong seat count",
      refund: "card",
    };
    const first = await creditNote(app, invoice.id, body, "refund-once");
    expect(first.status, first.text).toBe(503);
    expect(first.json.error.code).toBe("processor_unavailable");
    processor.clearFaults();
    const [pending] = await db.sql`select status from credit_note_refunds`;
    expect(pending?.status).toBe("pending");
    // Retried twice, once of them concurrently with another: one note, one refund.
    const retries = await Promise.all([
      creditNote(app, invoice.id, body, "refund-once"),
      creditNote(app, invoice.id, body, "refund-once"),
    ]);
    const done = retries.find((r) => r.status === 200 && r.json.card_refund?.status === "succeeded");
    expect(done, retries.map((r) => r.text).join("\n")).toBeDefined();
    expect(done?.json).toMatchObject({ refund: "card", total_usd: "10", grant_id: null });
    const again = await creditNote(app, invoice.id, body, "refund-once");
    expect(again.json.card_refund).toEqual({ status: "succeeded", failure: null });
    await processor.idle();
    const refunds = [...processor.refunds.values()];
    expect(refunds).toHaveLength(1);
    expect(refunds[0]).toMatchObject({ amount: 1000, metadata: { hanzo_credit_note: done?.json.id } });

    // The processor's charge.refunded for our refund took nothing from the org's credits.
    await processor.idle();
    expect(await app.balanceNano(org.orgKey)).toBe(balance);
    const reversals = await db.sql`select 1 from ledger_transactions where org_id = ${org.id} and kind = 'reversal'`;
    expect(reversals).toHaveLength(0);
    const [posted] = await db.sql<{ n: string }[]>`
      select count(*)::text as n from ledger_transactions where kind = 'credit_note' and idempotency_key = ${`card-refund:${done?.json.id}`}`;
    expect(posted?.n).toBe("1");
    await expectLedgerConsistent(db.sql);

    // 20 of the card payment is left for this invoice: 25 more by card is refused, 20 is not.
    const tooMuch = await creditNote(app, invoice.id, { ...body, lines: [{ description: "x", amount: "25" }] });
    expect(tooMuch.status).toBe(409);
    expect(tooMuch.json.error.code).toBe("credit_exceeds_invoice");
    const fractional = await creditNote(app, invoice.id, { ...body, lines: [{ description: "x", amount: "1.001" }] });
    expect(fractional.status).toBe(400);
  });

  it("an invoice no card paid is refunded as credits, not to a card", async ({ app, clock }) => {
    const org = await app.createOrg("Unpaid");
    const invoice = await issueInvoice(app, clock, org, { charge: "5" });
    const res = await creditNote(app, invoice.id, {
      lines: [{ description: "x", amount: "1" }],
      reason: "r",
      refund: "card",
    });
    expect(res.status, res.text).toBe(409);
    expect(res.json.error).toMatchObject({ code: "conflict", param: "refund" });
  });
});
