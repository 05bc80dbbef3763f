import { describe, expect } from "vitest";
import { expectLedgerConsistent } from "../support/ledger.js";
import { charge, dispute, paymentIntent, paymentsTest as it, processorId } from "../support/processor.js";

const NANO = 10_000_000n;

/**
 * Card reversals against redeliveries and ids that do not fit together (found by helper-78):
 * - a dispute's `created` resent under a new event id, after another dispute's win had filled it
 *   (closeDispute gives it what the win freed, in card_disputes only), took its amount again: its
 *   ledger key was unused, as its first delivery had taken nothing. It now takes only what it lacks;
 * - a reversal naming a payment not credited yet fell back to whatever top-up held its charge id,
 *   another org's payment's: it now waits for its own payment;
 * - a payment_intent.succeeded naming a charge another payment's top-up holds was a 500 on every
 *   retry (the charge id is unique there): the first link stays, the payment is credited.
 */
describe("card reversals with resent events and charges named with two payments", () => {
  it("a dispute's created resent under a new event id, after another dispute's win filled it, takes nothing more", async ({
    app,
    db,
  }) => {
    const org = await app.linkedOrg();
    const pi = processorId("pi");
    const ch = processorId("ch");
    const a = processorId("dp");
    const b = processorId("dp");
    const steps = [
      app.event(
        "payment_intent.succeeded",
        paymentIntent({ id: pi, customer: org.customerId, cents: 10000, charge: ch }),
      ),
      app.event("charge.dispute.created", dispute({ id: a, charge: ch, paymentIntent: pi, cents: 10000 })),
      app.event("charge.dispute.created", dispute({ id: b, charge: ch, paymentIntent: pi, cents: 5000 })),
      app.event(
        "charge.dispute.closed",
        dispute({ id: a, charge: ch, paymentIntent: pi, cents: 10000, status: "won" }),
      ),
      // the same dispute b's created, sent again by the processor under another event id
      app.event("charge.dispute.created", dispute({ id: b, charge: ch, paymentIntent: pi, cents: 5000 })),
    ];
    for (const e of steps) expect((await app.deliver(e)).status).toBe(200);
    // a won, b open for $50: the org keeps $50
    expect(await app.balanceNano(org.orgKey)).toBe(5000n * NANO);
    await expectLedgerConsistent(db.sql);
  });

  it("a charge-only dispute of a charge first linked to org A's uncredited payment takes nothing of org B's payment that also named it", async ({
    app,
    db,
  }) => {
    const orgA = await app.linkedOrg("A");
    const orgB = await app.linkedOrg("B");
    const piA = processorId("pi");
    const piB = processorId("pi");
    const ch = processorId("ch");
    const d = processorId("dp");
    const steps = [
      // first link: ch is piA's (org A)
      app.event("charge.succeeded", {
        ...charge({ id: ch, paymentIntent: piA, cents: 10000, refundedCents: 0 }),
        customer: orgA.customerId,
      }),
      // a conflicting event: org B's payment names the same charge
      app.event(
        "payment_intent.succeeded",
        paymentIntent({ id: piB, customer: orgB.customerId, cents: 10000, charge: ch }),
      ),
      // a dispute of ch naming only the charge: per the first link it is piA's
      app.event("charge.dispute.created", dispute({ id: d, charge: ch, paymentIntent: null, cents: 10000 })),
      // org A's payment credited (its charge is already known from charge.succeeded)
      app.event("payment_intent.succeeded", paymentIntent({ id: piA, customer: orgA.customerId, cents: 10000 })),
    ];
    for (const e of steps) {
      const r = await app.deliver(e);
      expect(r.status, `${e.type}: ${r.text}`).toBe(200);
    }
    // the dispute is piA's: org A keeps nothing, org B (never disputed) keeps its $100
    const got = [await app.balanceNano(orgA.orgKey), await app.balanceNano(orgB.orgKey)];
    expect(got).toEqual([0n, 10000n * NANO]);
    await expectLedgerConsistent(db.sql);
  });

  it("a dispute naming org A's uncredited payment and a charge org B's payment named waits for org A's payment", async ({
    app,
    db,
  }) => {
    const orgA = await app.linkedOrg("A");
    const orgB = await app.linkedOrg("B");
    const piA = processorId("pi");
    const piB = processorId("pi");
    const ch = processorId("ch");
    const d = processorId("dp");
    const steps = [
      app.event(
        "payment_intent.succeeded",
        paymentIntent({ id: piB, customer: orgB.customerId, cents: 10000, charge: ch }),
      ),
      app.event("charge.dispute.created", dispute({ id: d, charge: ch, paymentIntent: piA, cents: 10000 })),
      app.event("payment_intent.succeeded", paymentIntent({ id: piA, customer: orgA.customerId, cents: 10000 })),
    ];
    const outs = [];
    for (const e of steps) {
      const r = await app.deliver(e);
      expect(r.status).toBe(200);
      outs.push(r.json.outcome);
    }
    expect(outs).toEqual(["credited", "awaiting_payment", "credited"]);
    const got = [await app.balanceNano(orgA.orgKey), await app.balanceNano(orgB.orgKey)];
    expect(got).toEqual([0n, 10000n * NANO]);
    await expectLedgerConsistent(db.sql);
  });

  it("a payment_intent.succeeded naming a charge another payment's top-up holds is credited (200)", async ({
    app,
    db,
  }) => {
    const orgA = await app.linkedOrg("A");
    const orgB = await app.linkedOrg("B");
    const piA = processorId("pi");
    const piB = processorId("pi");
    const ch = processorId("ch");
    expect(
      (
        await app.deliver(
          app.event(
            "payment_intent.succeeded",
            paymentIntent({ id: piB, customer: orgB.customerId, cents: 10000, charge: ch }),
          ),
        )
      ).status,
    ).toBe(200);
    const credit = app.event(
      "payment_intent.succeeded",
      paymentIntent({ id: piA, customer: orgA.customerId, cents: 2500, charge: ch }),
    );
    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await app.deliver(credit)).status);
    expect(statuses).toEqual([200, 200, 200]);
    await expectLedgerConsistent(db.sql);
  });
});
