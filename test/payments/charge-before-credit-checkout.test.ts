import { describe, expect } from "vitest";
import type { FakeEvent } from "../../dev/processor/server.js";
import { cardTest as it, requestTopup, topupBody } from "../support/fake-processor.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import { dispute, processorId } from "../support/processor.js";

/**
 * As charge-before-credit.test.ts, with the fake processor's own events: charge.succeeded and
 * checkout.session.completed (which names no charge) arrive, payment_intent.succeeded is lost, and
 * a dispute names only the charge. It is taken. Before, it waited for ever (awaiting_payment).
 */
describe("a checkout paid, its payment's own event lost", () => {
  it("a dispute naming only the charge is taken", async ({ app, processor, db, webhookSecret }) => {
    const org = await app.createOrg();
    const res = await requestTopup(app, org.orgKey, topupBody({ amount: "25.00" }));
    await processor.idle();
    const [row] = await db.sql<
      { session_id: string }[]
    >`select session_id from card_checkouts where id = ${res.json.id}`;
    processor.setWebhookMode("hold");
    let chargeId = "";
    try {
      const session = processor.completeCheckout(row?.session_id as string);
      chargeId = processor.paymentIntents.get(session.payment_intent as string)?.latest_charge as string;
      const held = processor.held();
      processor.discard();
      const byType = (t: string) => held.find((e) => e.type === t) as FakeEvent;
      expect(await processor.deliver(byType("charge.succeeded"))).toBe(200);
      expect(await processor.deliver(byType("checkout.session.completed"))).toBe(200);
    } finally {
      processor.setWebhookMode("auto");
    }
    expect(await app.balanceNano(org.orgKey)).toBe(25_000_000_000n);
    const opened = app.event(
      "charge.dispute.created",
      dispute({ id: processorId("dp"), charge: chargeId, paymentIntent: null, cents: 2500 }),
    );
    const taken = await app.deliver(opened, { secret: webhookSecret });
    expect(taken.status).toBe(200);
    expect(taken.json.outcome).toBe("reversed");
    expect(await app.balanceNano(org.orgKey)).toBe(0n);
    await expectLedgerConsistent(db.sql);
  });
});
