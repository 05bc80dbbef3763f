import { expect } from "vitest";
import { cardTest as it, payOnPage, requestTopup, topupBody } from "../support/fake-processor.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import { creditNote, issueInvoice } from "./invoices.js";

const CENT = 10_000_000n;

/**
 * A card note the processor refuses is marked failed "for an operator to settle another way (e.g.
 * credits)" (refund-to-card.ts). The failed note counted in full against the invoice's subtotal, so
 * a credits note for the same correction was refused with credit_exceeds_invoice: the correction
 * reached the org neither on the card nor as credits (found by helper-81). A failed note (final)
 * gave nothing back and no longer counts; a note beyond the subtotal is still refused.
 */
it("a card note refused by the processor: the same correction is issued as credits, once", {
  timeout: 90_000,
}, async ({ app, clock, db, processor }) => {
  const org = await app.createOrg("Refused note");
  await issueInvoice(app, clock, org, { charge: "30" });
  const [invoice] = await db.sql<
    { id: string }[]
  >`select id from invoices where org_id = ${org.id} and subtotal = 30000000000`;
  const topup = await requestTopup(app, org.orgKey, topupBody({ amount: "50.00" }));
  expect((await payOnPage(topup.json.url)).status).toBe(303);
  await processor.idle();
  const [t] = await db.sql<{ payment_id: string }[]>`select payment_id from card_topups where org_id = ${org.id}`;
  const afterTopup = await app.balanceNano(org.orgKey); // 50 - 30 = 20

  // Support refunds 25 at the dashboard; its event is late. The operator's card note of 30 is refused (25 left).
  processor.setWebhookMode("hold");
  processor.refund(t!.payment_id, 2500);
  const card = await creditNote(app, invoice!.id, {
    lines: [{ description: "Wrong seats", amount: "30" }],
    reason: "r",
    refund: "card",
  });
  expect(card.status, card.text).toBe(201);
  expect(card.json.card_refund.status).toBe("failed");
  await processor.release();
  processor.setWebhookMode("auto");
  await processor.idle();
  expect((afterTopup - (await app.balanceNano(org.orgKey))) / CENT).toBe(2500n);

  // Settled another way, as credits: the same correction.
  const credits = await creditNote(app, invoice!.id, {
    lines: [{ description: "Wrong seats", amount: "30" }],
    reason: "r (card refused)",
  });
  expect({ status: credits.status, code: credits.json?.error?.code ?? null }).toEqual({ status: 201, code: null });
  expect((afterTopup - (await app.balanceNano(org.orgKey))) / CENT).toBe(2500n - 3000n); // the 30 came back as credits
  // The invoice's 30 is credited now: nothing more, to credits or to the card.
  const more = await creditNote(app, invoice!.id, { lines: [{ description: "Again", amount: "0.01" }], reason: "r" });
  expect({ status: more.status, code: more.json?.error?.code }).toEqual({
    status: 409,
    code: "credit_exceeds_invoice",
  });
  await expectLedgerConsistent(db.sql);
});
