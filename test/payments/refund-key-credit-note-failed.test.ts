import { expect } from "vitest";
import { cardTest as it, payOnPage, requestTopup, topupBody } from "../support/fake-processor.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import { charge } from "../support/processor.js";
import { creditNote, issueInvoice } from "../documents/invoices.js";

const NANO = 10_000_000n;

/**
 * A refund event is applied as the growth of the charge's cumulative amount_refunded less our
 * pending credit-note refunds. Keyed by the event's cumulative amount, the same event resent after
 * our pending refund failed (it now counts the part that refund had hidden) found its key used and
 * took nothing (found by helper-80). The key is now what others refunded (refundKey).
 */
it("a resent charge.refunded after our pending credit-note refund failed takes what that refund had hidden", {
  timeout: 60_000,
}, async ({ app, clock, db, processor, webhookSecret }) => {
  const org = await app.createOrg("CN failed");
  const invoice = await issueInvoice(app, clock, org, { charge: "30" });
  const topup = await requestTopup(app, org.orgKey, topupBody({ amount: "30.00" }));
  expect(topup.status, topup.text).toBe(201);
  expect((await payOnPage(topup.json.url)).status).toBe(303);
  await processor.idle();
  const [t] = await db.sql<{ payment_id: string; charge_id: string | null }[]>`
    select payment_id, charge_id from card_topups where org_id = ${org.id}`;
  expect(t?.charge_id).toBeTruthy();
  const afterTopup = await app.balanceNano(org.orgKey);

  // Our credit-note refund of $10 is sent, no answer (the processor never made it): pending.
  processor.fail({ kind: "unreachable", match: /^POST \/v1\/refunds$/ });
  const body = { lines: [{ description: "Overcharge", amount: "10.00" }], reason: "r", refund: "card" };
  const first = await creditNote(app, invoice.id, body, "cn-1");
  expect(first.status, first.text).toBe(503);
  processor.clearFaults();

  // The whole $30 is refunded at the processor's dashboard: charge.refunded, amount_refunded 3000.
  processor.refund(t!.payment_id, 3000);
  await processor.idle();

  // Our refund is retried: the processor refuses it (already refunded), it is marked failed.
  const retry = await creditNote(app, invoice.id, body, "cn-1");
  const [cnr] = await db.sql<{ status: string }[]>`select status from credit_note_refunds`;
  expect(cnr?.status, retry.text).toBe("failed");

  // The processor sends the charge.refunded again, under another event id.
  const resent = await app.deliver(
    app.event(
      "charge.refunded",
      charge({ id: t!.charge_id!, paymentIntent: t!.payment_id, cents: 3000, refundedCents: 3000 }),
    ),
    { secret: webhookSecret },
  );
  expect(resent.status, resent.text).toBe(200);

  // All $30 went back to the card by others than us: the org keeps nothing of the top-up.
  expect(await app.balanceNano(org.orgKey)).toBe(afterTopup - 3000n * NANO);
  await expectLedgerConsistent(db.sql);
});
