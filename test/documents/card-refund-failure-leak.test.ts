import { expect } from "vitest";
import { cardTest as it, payOnPage, requestTopup, topupBody } from "../support/fake-processor.js";
import { findLeaks } from "../support/processor.js";
import { creditNote, issueInvoice } from "./invoices.js";

/**
 * A refused card refund's failure is shown to the organization (GET /v1/billing/credit-notes and
 * /{id}, card_refund.failure): it was the processor's message, which names the charge (found by
 * helper-81). It is now the processor's error code; the message goes to the operator's log.
 */
it("a refused card refund's failure shown to the org holds no processor id", { timeout: 90_000 }, async ({
  app,
  clock,
  db,
  processor,
}) => {
  const org = await app.createOrg("Leak");
  await issueInvoice(app, clock, org, { charge: "30" });
  const [invoice] = await db.sql<
    { id: string }[]
  >`select id from invoices where org_id = ${org.id} and subtotal = 30000000000`;
  const topup = await requestTopup(app, org.orgKey, topupBody({ amount: "30.00" }));
  expect((await payOnPage(topup.json.url)).status).toBe(303);
  await processor.idle();
  const [t] = await db.sql<
    { payment_id: string; charge_id: string }[]
  >`select payment_id, charge_id from card_topups where org_id = ${org.id}`;
  // The whole charge refunded at the dashboard; its event is not here yet.
  processor.setWebhookMode("hold");
  processor.refund(t!.payment_id);
  const note = await creditNote(app, invoice!.id, {
    lines: [{ description: "x", amount: "5" }],
    reason: "r",
    refund: "card",
  });
  await processor.release();
  processor.setWebhookMode("auto");
  await processor.idle();
  expect(note.status, note.text).toBe(201);
  expect(note.json.card_refund.status).toBe("failed");
  const seen = await app.call("GET", `/v1/billing/credit-notes/${note.json.id}`, { key: org.orgKey });
  const list = await app.call("GET", "/v1/billing/credit-notes", { key: org.orgKey });
  expect(seen.json.card_refund.failure).toMatch(/^refused by the card processor: \w+$/);
  expect(findLeaks([seen.text, list.text], [t!.payment_id, t!.charge_id])).toEqual([]);
});
