import { expect } from "vitest";
import { creditNote, issueInvoice } from "../documents/invoices.js";
import { cardTest as it, payOnPage, requestTopup, topupBody } from "../support/fake-processor.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import { advisoryWaiters, holdLocks, waitFor } from "../support/lock-waits.js";

const CENT = 10_000_000n;

/**
 * Found by helper-85. refundCreditNoteToCard takes the payment's lock (`card-payment:pi_…`) and, since
 * 879e342, reapplyNewestRefund → reverseCardTopup then takes `card-payment:ch_…` under it: the
 * charge after the payment. Every processor event takes them in sorted order (ch_ before pi_), so
 * a charge.refunded applied at the moment a credit note's refund is answered "refused" (once an
 * earlier refund event of the charge was applied, so that there is something to re-apply) deadlocks
 * with it. The event side retries on deadlock; the credit note's side did not: the note's answer
 * was lost (500), the note stayed pending, and the dashboard refund's part it hid stayed with the
 * org. It now takes the payment's and its charges' locks at once, sorted, and retries on deadlock. The test holds `card-payment:pi_…` for a moment only to order the two real transactions.
 */
it.scoped({ dbOptions: { max: 12 } });

it("a charge.refunded racing a credit note's refused refund: the note is answered and the org loses all the dashboard refunded", {
  timeout: 120_000,
}, async ({ app, clock, db, processor }) => {
  const org = await app.createOrg("note refused racing a refund");
  const invoice = await issueInvoice(app, clock, org, { charge: "30" });
  const topup = await requestTopup(app, org.orgKey, topupBody({ amount: "30.00" }));
  expect((await payOnPage(topup.json.url)).status).toBe(303);
  await processor.idle();
  const [t] = await db.sql<{ payment_id: string }[]>`select payment_id from card_topups where org_id = ${org.id}`;
  const paymentId = t!.payment_id;
  const afterTopup = await app.balanceNano(org.orgKey);

  // Our $10 note: the processor unreachable, nothing made, the note pending.
  processor.fail({ kind: "unreachable", match: /^POST \/v1\/refunds$/ });
  const body = { lines: [{ description: "Overcharge", amount: "10.00" }], reason: "r", refund: "card" };
  expect((await creditNote(app, invoice.id, body, "h85-dl-1")).status).toBe(503);
  processor.clearFaults();

  // $20 refunded at the dashboard, its charge.refunded applied while the note is pending (it takes
  // $10 of it: the note hides the rest); then $5 more, its charge.refunded held.
  processor.refund(paymentId, 2000);
  await processor.idle();
  processor.setWebhookMode("hold");
  processor.refund(paymentId, 500);
  const base = await advisoryWaiters(db.sql);
  const deadlocks = async () =>
    (
      await db.sql<{ n: number }[]>`select deadlocks::int as n from pg_stat_database where datname = current_database()`
    )[0]!.n;
  const deadlocksBefore = await deadlocks();

  const holder = await holdLocks(
    db.sql,
    (tx) => tx`select pg_advisory_xact_lock(hashtextextended(${`card-payment:${paymentId}`}, 0))`,
  );
  // The note retried: the processor refuses it ($5 left), its transaction waits for the payment's lock.
  const retry = creditNote(app, invoice.id, body, "h85-dl-1");
  await waitFor(async () => (await advisoryWaiters(db.sql)) > base, "the note's answer waiting");
  // The dashboard refund's event arrives: it takes the charge's lock, then waits for the payment's.
  const delivered = processor.release();
  await waitFor(async () => (await advisoryWaiters(db.sql)) > base + 1, "charge.refunded waiting");
  // Past the event's own deadlock check (deadlock_timeout, 1 s) before the cycle closes.
  await new Promise((r) => setTimeout(r, 1500));
  await holder.release();
  const [res] = await Promise.all([retry, delivered]);
  processor.setWebhookMode("auto");
  await processor.idle();

  const [note] = await db.sql<{ status: string }[]>`
    select r.status from credit_note_refunds r join credit_notes n on n.id = r.credit_note_id
    where n.org_id = ${org.id}`;
  const lost = afterTopup - (await app.balanceNano(org.orgKey));
  expect(
    { httpStatus: res.status, note: note?.status, creditsLostCents: lost / CENT },
    `${res.text}\ndeadlocks: ${(await deadlocks()) - deadlocksBefore}`,
  ).toEqual({
    httpStatus: 200,
    note: "failed",
    creditsLostCents: 2500n,
  });
  await expectLedgerConsistent(db.sql);
});
