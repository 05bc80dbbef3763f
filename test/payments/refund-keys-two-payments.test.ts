import { describe, expect } from "vitest";
import { expectLedgerConsistent } from "../support/ledger.js";
import { charge, paymentIntent, paymentsTest as it, processorId } from "../support/processor.js";

const NANO = 10_000_000n;

/**
 * A refund's ledger key named the charge and its cumulative refunded amount only: when the
 * processor named one charge with two payments, the second payment's refund of that charge found
 * the key used, by another org (409 on every retry, never applied) or by the same org (nothing
 * taken). Found by helper-80; the key now carries the payment when the charge is not the top-up's
 * own (refundKey, src/billing/payments/reverse-card-topup.ts).
 */
describe("refunds of one charge named with two payments", () => {
  it("a refund naming org B's payment and a charge linked to org A's payment leaves org A's own refund to apply", async ({
    app,
    db,
  }) => {
    const orgA = await app.linkedOrg("A");
    const orgB = await app.linkedOrg("B");
    const piA = processorId("pi");
    const piB = processorId("pi");
    const ch = processorId("ch");
    const steps = [
      app.event(
        "payment_intent.succeeded",
        paymentIntent({ id: piA, customer: orgA.customerId, cents: 10000, charge: ch }),
      ),
      // conflicting: org B's payment names the same charge (credited without it)
      app.event(
        "payment_intent.succeeded",
        paymentIntent({ id: piB, customer: orgB.customerId, cents: 10000, charge: ch }),
      ),
      // a refund naming piB: applied to piB (the payment it names)
      app.event("charge.refunded", charge({ id: ch, paymentIntent: piB, cents: 10000, refundedCents: 5000 })),
      // org A's own refund of its charge, same cumulative amount
      app.event("charge.refunded", charge({ id: ch, paymentIntent: piA, cents: 10000, refundedCents: 5000 })),
    ];
    const statuses: number[] = [];
    for (const e of steps) statuses.push((await app.deliver(e)).status);
    // the processor retries the last one
    for (let i = 0; i < 2; i++) statuses.push((await app.deliver(steps[3]!)).status);
    const got = [await app.balanceNano(orgA.orgKey), await app.balanceNano(orgB.orgKey)];
    // no 5xx/4xx; each org: credited 100 - refund 50
    expect({ statuses, got }).toEqual({ statuses: [200, 200, 200, 200, 200, 200], got: [5000n * NANO, 5000n * NANO] });
    await expectLedgerConsistent(db.sql);
  });

  it("same org: each payment's refund of the shared charge id is taken", async ({ app, db }) => {
    const org = await app.linkedOrg("S");
    const piA = processorId("pi");
    const piB = processorId("pi");
    const ch = processorId("ch");
    const steps = [
      app.event(
        "payment_intent.succeeded",
        paymentIntent({ id: piA, customer: org.customerId, cents: 10000, charge: ch }),
      ),
      app.event(
        "payment_intent.succeeded",
        paymentIntent({ id: piB, customer: org.customerId, cents: 10000, charge: ch }),
      ),
      app.event("charge.refunded", charge({ id: ch, paymentIntent: piB, cents: 10000, refundedCents: 5000 })),
      app.event("charge.refunded", charge({ id: ch, paymentIntent: piA, cents: 10000, refundedCents: 5000 })),
    ];
    const statuses: number[] = [];
    for (const e of steps) statuses.push((await app.deliver(e)).status);
    // credited 200, each payment refunded 50
    expect({ statuses, bal: await app.balanceNano(org.orgKey) }).toEqual({
      statuses: [200, 200, 200, 200],
      bal: 10000n * NANO,
    });
    await expectLedgerConsistent(db.sql);
  });
});
