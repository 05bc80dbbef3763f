import { describe, expect } from "vitest";
import type { FakeEvent, FakeProcessor } from "../../dev/processor/server.js";
import type { Sql } from "../../src/db/client.js";
import { cardTest as it, requestTopup, TOPUP_PATH, topupBody } from "../support/fake-processor.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import { dispute, type PaymentsTestApp } from "../support/processor.js";

/**
 * Card top-ups credited by the processor's signed webhooks, as the fake delivers them: in any
 * order, any number of times, one of the two crediting events lost, or for a session we never made.
 */

const sessionIdOf = async (db: { sql: import("../../src/db/client.js").Sql }, topupId: string) => {
  const [row] = await db.sql<{ session_id: string }[]>`select session_id from card_checkouts where id = ${topupId}`;
  return row?.session_id as string;
};

describe("checkout webhooks", () => {
  it.scoped({ dbOptions: { max: 12 } });

  it.for([
    { name: "in order, once", order: "as_made" as const, copies: 1 },
    { name: "reversed, three times each", order: "reverse" as const, copies: 3 },
    {
      name: "shuffled, twice each",
      order: (events: FakeEvent[]) => [...events].sort((a, b) => (a.id < b.id ? -1 : 1)),
      copies: 2,
    },
  ])(
    "delivered $name: credited exactly once, to the org of the session",
    async ({ order, copies }, { app, processor, db }) => {
      const org = await app.createOrg();
      const bystander = await app.createOrg("Bystander");
      const res = await requestTopup(app, org.orgKey, topupBody({ amount: "42.50" }));
      await processor.idle();
      processor.setWebhookMode("hold");
      try {
        processor.completeCheckout(await sessionIdOf(db, res.json.id));
        const statuses = await processor.release({ order, copies });
        expect(statuses.every((s) => s === 200)).toBe(true);
      } finally {
        processor.setWebhookMode("auto");
      }
      expect(await app.balanceNano(org.orgKey)).toBe(42_500_000_000n);
      expect(await app.balanceNano(bystander.orgKey)).toBe(0n);
      const [count] = await db.sql<{ n: number }[]>`
      select count(*)::int as n from ledger_transactions where org_id = ${org.id} and kind = 'card_topup'`;
      expect(count?.n).toBe(1);
      const list = await app.call("GET", TOPUP_PATH, { key: org.orgKey });
      expect(list.json.data).toEqual([expect.objectContaining({ id: res.json.id, status: "succeeded" })]);
      const events = await app.call("GET", "/v1/billing/events?type=topup.succeeded", { key: org.orgKey });
      expect(events.json.data).toEqual([
        expect.objectContaining({
          type: "topup.succeeded",
          data: { topup_id: res.json.id, amount: 42.5, amount_usd: "42.5", amount_nano_usd: "42500000000" },
        }),
      ]);
    },
  );

  it.for(["checkout.session.completed", "payment_intent.succeeded"])(
    "only %s arrives: credited once and listed as succeeded",
    async (only, { app, processor, db }) => {
      const org = await app.createOrg();
      const res = await requestTopup(app, org.orgKey);
      await processor.idle();
      processor.setWebhookMode("hold");
      try {
        processor.completeCheckout(await sessionIdOf(db, res.json.id));
        await processor.release({ pick: (e) => e.type === only, copies: 2 });
        processor.discard(); // the rest is lost
      } finally {
        processor.setWebhookMode("auto");
      }
      expect(await app.balanceNano(org.orgKey)).toBe(25_000_000_000n);
      const list = await app.call("GET", TOPUP_PATH, { key: org.orgKey });
      expect(list.json.data[0]).toMatchObject({ id: res.json.id, status: "succeeded" });
      // One event whichever of the two credited, named by the top-up (never a processor id).
      const events = await app.call("GET", "/v1/billing/events?type=topup.succeeded", { key: org.orgKey });
      expect(events.json.data.map((e: { data: { topup_id: string } }) => e.data.topup_id)).toEqual([res.json.id]);
      expect(JSON.stringify(events.json)).not.toMatch(/pi_|ch_|cs_|cus_/);
    },
  );

  it("a completed session we did not make is recorded and credits nothing", async ({ app, processor, db }) => {
    const org = await app.createOrg();
    await requestTopup(app, org.orgKey); // links a customer to the org
    await processor.idle();
    const customer = [...processor.customers.values()].find((c) => c.metadata.org_id === org.id);
    const forged: FakeEvent = {
      id: "evt_1NotOursSessionAbcdefgh",
      object: "event",
      api_version: "2026-10-28.endive",
      created: Math.floor(app.clock().getTime() / 1000),
      livemode: false,
      pending_webhooks: 1,
      request: { id: null, idempotency_key: null },
      type: "checkout.session.completed",
      data: {
        object: {
          id: "cs_test_a1NotMadeByUsAbcdefghijklmnop",
          object: "checkout.session",
          mode: "payment",
          status: "complete",
          payment_status: "paid",
          amount_total: 100000,
          currency: "usd",
          customer: customer?.id,
          payment_intent: "pi_1NotOursAbcdefghijklmn",
          metadata: { org_id: org.id },
        },
      },
    };
    expect(await processor.deliver(forged)).toBe(200);
    expect(await processor.deliver(forged)).toBe(200);
    expect(await app.balanceNano(org.orgKey)).toBe(0n);
    const [event] = await db.sql<{ outcome: string; org_id: string | null }[]>`
      select outcome, org_id from processor_events where id = ${forged.id}`;
    expect(event).toEqual({ outcome: "unknown_session", org_id: null });
  });

  it("an expired session is listed as failed and never credits", async ({ app, processor, db }) => {
    const org = await app.createOrg();
    const res = await requestTopup(app, org.orgKey);
    processor.expireCheckout(await sessionIdOf(db, res.json.id));
    await processor.idle();
    const list = await app.call("GET", TOPUP_PATH, { key: org.orgKey });
    expect(list.json.data[0]).toMatchObject({ id: res.json.id, status: "failed" });
    expect(await app.balanceNano(org.orgKey)).toBe(0n);
    const events = await app.call("GET", "/v1/billing/events?type=topup.failed", { key: org.orgKey });
    expect(events.json.data).toEqual([
      expect.objectContaining({
        data: expect.objectContaining({ topup_id: res.json.id, failure_message: expect.any(String) }),
      }),
    ]);
  });

  it("the session's completion and the payment's success delivered at the same moment are both 200 and credit once", {
    timeout: 120_000,
  }, async ({ app, processor, db }) => {
    const org = await app.createOrg();
    const rounds = 50; // the deadlock they used to reach took a few rounds in fifty
    const statuses: (number | string)[] = [];
    for (let i = 0; i < rounds; i++) {
      const res = await requestTopup(app, org.orgKey, topupBody({ amount: "10.00" }));
      await processor.idle();
      processor.setWebhookMode("hold");
      try {
        processor.completeCheckout(await sessionIdOf(db, res.json.id));
        const pair = processor
          .held()
          .filter((e) => e.type === "checkout.session.completed" || e.type === "payment_intent.succeeded");
        processor.discard();
        statuses.push(...(await Promise.all(pair.map((e) => processor.deliver(e)))));
      } finally {
        processor.setWebhookMode("auto");
      }
    }
    expect(statuses).toEqual(Array(2 * rounds).fill(200));
    expect(await app.balanceNano(org.orgKey)).toBe(BigInt(rounds) * 10_000_000_000n);
    await expectLedgerConsistent(db.sql);
  });

  it("a dispute naming only its charge, after the session credited the payment, is taken once the payment's events name the charge", async ({
    app,
    processor,
    db,
    webhookSecret,
  }) => {
    const org = await app.createOrg();
    const res = await requestTopup(app, org.orgKey, topupBody({ amount: "25.00" }));
    await processor.idle();
    const sessionId = await sessionIdOf(db, res.json.id);
    processor.setWebhookMode("hold");
    try {
      processor.completeCheckout(sessionId);
      // The session credits first: it does not name the charge.
      expect(await processor.release({ pick: (e) => e.type === "checkout.session.completed" })).toEqual([200]);
      expect(await app.balanceNano(org.orgKey)).toBe(25_000_000_000n);
      const pi = processor.paymentIntents.get(processor.sessions.get(sessionId)?.payment_intent as string);
      const opened = app.event(
        "charge.dispute.created",
        dispute({
          id: "dp_1TstChargeOnlyAfterSession",
          charge: pi?.latest_charge as string,
          paymentIntent: null,
          cents: 2500,
        }),
      );
      const parked = await app.deliver(opened, { secret: webhookSecret });
      expect(parked.json.outcome).toBe("awaiting_payment");
      // payment_intent.succeeded and charge.succeeded both name the charge: delivered together, twice each.
      const rest = processor.held();
      processor.discard();
      const statuses = await Promise.all([...rest, ...rest].map((e) => processor.deliver(e)));
      expect(statuses.every((s) => s === 200)).toBe(true);
      expect((await app.deliver(opened, { secret: webhookSecret })).json.duplicate).toBe(true);
    } finally {
      processor.setWebhookMode("auto");
    }
    expect(await app.balanceNano(org.orgKey)).toBe(0n);
    const [reversals] = await db.sql<{ n: number }[]>`
      select count(*)::int as n from ledger_transactions where org_id = ${org.id} and kind = 'reversal'`;
    expect(reversals?.n).toBe(1);
    await expectLedgerConsistent(db.sql);
  });

  /**
   * A $25.00 top-up paid at the processor, whose session's completion reaches us saying `currency`
   * (null: saying none), then the payment's own event as the processor sent it: the session's
   * outcome, and the payment event's delivery statuses.
   */
  async function payWithSessionCurrency(
    f: { app: PaymentsTestApp; processor: FakeProcessor; db: { sql: Sql }; webhookSecret: string },
    currency: string | null,
  ) {
    const { app, processor, db, webhookSecret } = f;
    const org = await app.createOrg();
    const res = await requestTopup(app, org.orgKey, topupBody({ amount: "25.00" }));
    await processor.idle();
    processor.setWebhookMode("hold");
    try {
      processor.completeCheckout(await sessionIdOf(db, res.json.id));
      const completed = processor.held().find((e) => e.type === "checkout.session.completed") as FakeEvent;
      const session = app.event("checkout.session.completed", { ...completed.data.object, currency });
      const sessionOutcome = (await app.deliver(session, { secret: webhookSecret })).json.outcome as string;
      const balanceBefore = await app.balanceNano(org.orgKey);
      const payment = await processor.release({ pick: (e) => e.type === "payment_intent.succeeded" });
      processor.discard();
      return { org, topupId: res.json.id as string, sessionOutcome, balanceBefore, payment };
    } finally {
      processor.setWebhookMode("auto");
    }
  }

  it("a paid session that does not say its currency leaves the credit to the payment's own event", async ({
    app,
    processor,
    db,
    webhookSecret,
  }) => {
    const { org, topupId, sessionOutcome, balanceBefore, payment } = await payWithSessionCurrency(
      { app, processor, db, webhookSecret },
      null,
    );
    expect(sessionOutcome).toBe("no_currency");
    expect(balanceBefore).toBe(0n);
    expect(payment).toEqual([200]);
    expect(await app.balanceNano(org.orgKey)).toBe(25_000_000_000n);
    const list = await app.call("GET", TOPUP_PATH, { key: org.orgKey });
    expect(list.json.data[0]).toMatchObject({ id: topupId, status: "succeeded" });
    const events = await app.call("GET", "/v1/billing/events?type=topup.succeeded", { key: org.orgKey });
    expect(events.json.data.map((e: { data: { topup_id: string } }) => e.data.topup_id)).toEqual([topupId]);
  });

  it("a paid session in another currency stays refused, whatever the payment's event says later", async ({
    app,
    processor,
    db,
    webhookSecret,
  }) => {
    const { org, sessionOutcome, payment } = await payWithSessionCurrency({ app, processor, db, webhookSecret }, "eur");
    expect(sessionOutcome).toBe("refused_currency");
    expect(payment).toEqual([200]);
    expect(await app.balanceNano(org.orgKey)).toBe(0n);
    const [topup] = await db.sql`select state from card_topups where org_id = ${org.id}`;
    expect(topup).toEqual({ state: "refused" });
  });
});
