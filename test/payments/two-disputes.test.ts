import { describe, expect } from "vitest";
import { expectLedgerConsistent } from "../support/ledger.js";
import { charge, dispute, paymentIntent, paymentsTest as it, processorId } from "../support/processor.js";

/**
 * Two disputes on one charge (an inquiry, then a chargeback; or a second dispute after the
 * first): what the org keeps depends on how they ended, never on the order their events arrive
 * in. A second dispute opened while the first held the whole payment took nothing and was
 * forgotten: the first's win then gave the money back although the second was lost
 * (closeDispute, src/billing/payments/reverse-card-topup.ts).
 */
type Step = "d1.created" | "d1.won" | "d1.lost" | "d2.created" | "d2.won" | "d2.lost" | "refund";

const cases: { name: string; order: Step[]; disputed: [number, number]; left: bigint }[] = [
  {
    name: "first won, second lost, in time order",
    order: ["d1.created", "d1.won", "d2.created", "d2.lost"],
    disputed: [2500, 2500],
    left: 0n,
  },
  {
    name: "first won, second lost, both opened first",
    order: ["d1.created", "d2.created", "d1.won", "d2.lost"],
    disputed: [2500, 2500],
    left: 0n,
  },
  {
    name: "second lost before the first is won",
    order: ["d1.created", "d2.created", "d2.lost", "d1.won"],
    disputed: [2500, 2500],
    left: 0n,
  },
  { name: "both won", order: ["d1.created", "d2.created", "d1.won", "d2.won"], disputed: [2500, 2500], left: 2500n },
  {
    name: "the second won first, the first lost",
    order: ["d1.created", "d2.created", "d2.won", "d1.lost"],
    disputed: [2500, 2500],
    left: 0n,
  },
  // $15.00 and $10.00 disputed, then $5.00 refunded while they hold everything: the first's win
  // gives back only what neither the refund nor the second dispute holds.
  {
    name: "a refund and another open dispute",
    order: ["d1.created", "d2.created", "refund", "d1.won"],
    disputed: [1500, 1000],
    left: 1000n,
  },
  {
    name: "a refund, both won",
    order: ["d1.created", "d2.created", "refund", "d1.won", "d2.won"],
    disputed: [1500, 1000],
    left: 2000n,
  },
];

describe("two disputes on one $25.00 charge", () => {
  for (const c of cases) {
    it(`${c.name}: the org keeps $${Number(c.left) / 100}`, async ({ app, db }) => {
      const org = await app.linkedOrg();
      const pi = processorId("pi");
      const ch = processorId("ch");
      const ids = [processorId("dp"), processorId("dp")] as const;
      const credit = await app.deliver(
        app.event(
          "payment_intent.succeeded",
          paymentIntent({ id: pi, customer: org.customerId, cents: 2500, charge: ch }),
        ),
      );
      expect(credit.json.outcome).toBe("credited");
      const of = (k: 0 | 1, status?: string) =>
        dispute({ id: ids[k], charge: ch, paymentIntent: pi, cents: c.disputed[k], ...(status ? { status } : {}) });
      const events = {
        "d1.created": app.event("charge.dispute.created", of(0)),
        "d1.won": app.event("charge.dispute.closed", of(0, "won")),
        "d1.lost": app.event("charge.dispute.closed", of(0, "lost")),
        "d2.created": app.event("charge.dispute.created", of(1)),
        "d2.won": app.event("charge.dispute.closed", of(1, "won")),
        "d2.lost": app.event("charge.dispute.closed", of(1, "lost")),
        refund: app.event("charge.refunded", charge({ id: ch, paymentIntent: pi, cents: 2500, refundedCents: 500 })),
      };
      for (const step of c.order) expect((await app.deliver(events[step])).status).toBe(200);
      expect(await app.balanceNano(org.orgKey)).toBe(c.left * 10_000_000n);
      await expectLedgerConsistent(db.sql);
    });
  }

  it("an inquiry closed warning_closed, then the chargeback lost: the org keeps nothing", async ({ app, db }) => {
    const org = await app.linkedOrg();
    const pi = processorId("pi");
    const ch = processorId("ch");
    const inquiry = `du_1Tst${processorId("dp").slice(7)}`;
    const chargeback = processorId("dp");
    const of = (id: string, status: string) => dispute({ id, charge: ch, paymentIntent: pi, cents: 2500, status });
    const steps = [
      app.event(
        "payment_intent.succeeded",
        paymentIntent({ id: pi, customer: org.customerId, cents: 2500, charge: ch }),
      ),
      app.event("charge.dispute.created", of(inquiry, "warning_needs_response")),
      app.event("charge.dispute.created", of(chargeback, "needs_response")),
      app.event("charge.dispute.closed", of(inquiry, "warning_closed")),
      app.event("charge.dispute.closed", of(chargeback, "lost")),
    ];
    for (const e of steps) expect((await app.deliver(e)).status).toBe(200);
    expect(await app.balanceNano(org.orgKey)).toBe(0n);
    await expectLedgerConsistent(db.sql);
  });
});
