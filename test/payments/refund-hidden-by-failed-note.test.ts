import { expect } from "vitest";
import { cardTest as it, payOnPage, requestTopup, topupBody } from "../support/fake-processor.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import { creditNote, issueInvoice } from "../documents/invoices.js";

const NANO = 10_000_000n;

/**
 * A dashboard refund whose charge.refunded arrives while our credit-note card refund is pending is
 * applied less that pending amount. When our refund then fails (the dashboard took the charge),
 * the part it hid must be taken then, with no event sent again (found by helper-81: the org kept
 * it, with each event delivered once). The newest refund event is now applied again at the failure.
 */
it("a dashboard refund applied while our credit-note refund was pending, which then fails: the org loses all the dashboard refunded", {
  timeout: 90_000,
}, async ({ app, clock, db, processor }) => {
  const org = await app.createOrg("CN hidden");
  const invoice = await issueInvoice(app, clock, org, { charge: "30" });
  const topup = await requestTopup(app, org.orgKey, topupBody({ amount: "30.00" }));
  expect(topup.status, topup.text).toBe(201);
  expect((await payOnPage(topup.json.url)).status).toBe(303);
  await processor.idle();
  const [t] = await db.sql<{ payment_id: string }[]>`select payment_id from card_topups where org_id = ${org.id}`;
  const afterTopup = await app.balanceNano(org.orgKey);

  // Our $10 credit-note refund: the processor is unreachable, nothing made, the note stays pending.
  processor.fail({ kind: "unreachable", match: /^POST \/v1\/refunds$/ });
  const body = { lines: [{ description: "Overcharge", amount: "10.00" }], reason: "r", refund: "card" };
  const first = await creditNote(app, invoice.id, body, "cn-hidden-1");
  expect(first.status, first.text).toBe(503);
  processor.clearFaults();

  // $25 refunded at the processor's dashboard; its charge.refunded (amount_refunded 2500) is delivered once.
  processor.refund(t!.payment_id, 2500);
  await processor.idle();

  // Our refund is retried: only $5 is left at the processor, it is refused and marked failed.
  const retry = await creditNote(app, invoice.id, body, "cn-hidden-1");
  expect(retry.json.card_refund?.status, retry.text).toBe("failed");
  await processor.idle();

  // $25 went back to the card, none of it by us: the org's credits must lose all $25.
  const lost = afterTopup - (await app.balanceNano(org.orgKey));
  expect({ reversedUsdCents: lost / NANO }).toEqual({ reversedUsdCents: 2500n });
  await expectLedgerConsistent(db.sql);
});
