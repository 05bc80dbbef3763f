import { describe, expect } from "vitest";
import { expectLedgerConsistent } from "../support/ledger.js";
import { charge, dispute, paymentIntent, paymentsTest as it, processorId } from "../support/processor.js";

/**
 * charge.succeeded names a charge with its payment. It may arrive before the payment is credited,
 * and the credit may come from an event that does not name the charge (payment_intent.succeeded
 * without latest_charge, checkout.session.completed): the link is kept on its own (card_charges),
 * so a refund or dispute naming only the charge is the payment's, whenever it arrives. Before, the
 * link was noted only on a credited payment's row, and such a reversal waited for ever.
 */
describe("charge.succeeded before the credit", () => {
  const orders = {
    "the reversal before the credit": ["charge.succeeded", "reversal", "credit"],
    "the reversal after the credit": ["charge.succeeded", "credit", "reversal"],
  } as const;
  for (const [name, order] of Object.entries(orders)) {
    for (const kind of ["dispute", "refund"] as const) {
      it(`a ${kind} naming only the charge, ${name}, is taken`, async ({ app, db }) => {
        const org = await app.linkedOrg();
        const pi = processorId("pi");
        const ch = processorId("ch");
        const events = {
          "charge.succeeded": app.event("charge.succeeded", {
            ...charge({ id: ch, paymentIntent: pi, cents: 2500, refundedCents: 0 }),
            customer: org.customerId,
          }),
          reversal:
            kind === "dispute"
              ? app.event(
                  "charge.dispute.created",
                  dispute({ id: processorId("dp"), charge: ch, paymentIntent: null, cents: 1000 }),
                )
              : app.event("charge.refunded", charge({ id: ch, paymentIntent: null, cents: 2500, refundedCents: 1000 })),
          // The payment's own event, without latest_charge.
          credit: app.event(
            "payment_intent.succeeded",
            paymentIntent({ id: pi, customer: org.customerId, cents: 2500 }),
          ),
        };
        for (const step of order) expect((await app.deliver(events[step])).status).toBe(200);
        expect(await app.balanceNano(org.orgKey)).toBe(15_000_000_000n);
        await expectLedgerConsistent(db.sql);
      });
    }
  }
});
