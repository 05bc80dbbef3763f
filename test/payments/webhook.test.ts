import { describe, expect } from "vitest";
import { orgCreditsAccount, SystemAccounts } from "../../src/ledger/accounts.js";
import { postTransaction } from "../../src/ledger/post-transaction.js";
import { TEST_ADMIN_KEY } from "../support/app.js";
import type { TestDatabase } from "../support/database.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import {
  charge,
  createPaymentsTestApp,
  type PaymentsTestApp,
  paymentsTest as it,
  dispute,
  findLeaks,
  paymentIntent,
  processorId,
  TEST_WEBHOOK_SECRET,
} from "../support/processor.js";

const USD = 1_000_000_000n; // nano-USD per USD

describe("POST /v1/webhooks/processor: card top-ups", () => {
  /** Every processor id this file sends, for the final leak scan. */
  const used: string[] = [];
  const id = (prefix: Parameters<typeof processorId>[0]) => {
    const value = processorId(prefix);
    used.push(value);
    return value;
  };

  it.scoped({ dbOptions: { max: 12 } });

  const ledgerRows = (db: TestDatabase, orgId: string) =>
    db.sql<{ kind: string; idempotency_key: string; amount: string }[]>`
      select t.kind, t.idempotency_key, e.amount::text as amount from ledger_transactions t
      join ledger_entries e on e.transaction_id = t.id and e.account_id = ${orgCreditsAccount(orgId)}
      where t.org_id = ${orgId} order by t.seq`;

  /** A linked org with one credited card top-up of `cents`. */
  async function toppedUp(app: PaymentsTestApp, cents: number) {
    const org = await app.linkedOrg();
    const pi = id("pi");
    const ch = id("ch");
    const res = await app.deliver(
      app.event("payment_intent.succeeded", paymentIntent({ id: pi, customer: org.customerId, cents, charge: ch })),
    );
    expect(res.status, res.text).toBe(200);
    expect(res.json.outcome).toBe("credited");
    return { ...org, pi, ch };
  }

  describe("signature", () => {
    const payment = (app: PaymentsTestApp) =>
      app.event("payment_intent.succeeded", paymentIntent({ id: id("pi"), customer: id("cus"), cents: 500 }));

    it("a missing header is 400 invalid_signature", async ({ app }) => {
      const res = await app.deliver(payment(app), { header: null });
      expect(res.status).toBe(400);
      expect(res.json.error).toMatchObject({
        type: "invalid_request_error",
        code: "invalid_signature",
        request_id: expect.any(String),
      });
    });

    it.for([
      ["made with another secret", { secret: "whsec_someoneelse0123456789abcdef" }],
      ["that is a garbled header", { header: "t=abc,v1=nothex" }],
    ] as const)("a signature %s is 400 invalid_signature", async ([, how], { app }) => {
      const res = await app.deliver(payment(app), how);
      expect(res.status, res.text).toBe(400);
      expect(res.json.error.code).toBe("invalid_signature");
    });

    it("a body changed after signing is 400 invalid_signature; the same bytes with their own signature pass", async ({
      app,
    }) => {
      const event = payment(app);
      const payload = JSON.stringify(event);
      const { default: Stripe } = await import("stripe");
      const header = Stripe.webhooks.generateTestHeaderString({
        payload,
        secret: TEST_WEBHOOK_SECRET,
        timestamp: app.nowSeconds(),
      });
      const tampered = await app.deliverRaw(payload.replace('"amount_received":500', '"amount_received":500000'), {
        header,
      });
      expect(tampered.status, tampered.text).toBe(400);
      expect(tampered.json.error.code).toBe("invalid_signature");
      // The refusal was about the signature.
      expect((await app.deliverRaw(payload, { header })).status).toBe(200);
    });

    it("a stale timestamp (older than the 300 s tolerance, by the app's clock) is 400; just inside it is accepted", async ({
      app,
    }) => {
      const stale = await app.deliver(payment(app), { timestamp: app.nowSeconds() - 301 });
      expect(stale.status).toBe(400);
      expect(stale.json.error.code).toBe("invalid_signature");
      expect(stale.json.error.message).toMatch(/300 seconds old/);
      const fresh = await app.deliver(payment(app), { timestamp: app.nowSeconds() - 299 });
      expect(fresh.status, fresh.text).toBe(200);
    });

    it("correctly signed bytes that are not JSON, or not an event, are 400 and nothing is recorded", async ({
      app,
      db,
    }) => {
      const before = await db.sql`select count(*)::int as n from processor_events`;
      const notJson = await app.deliverRaw("{not json");
      expect(notJson.status).toBe(400);
      expect(notJson.json.error.code).toBe("invalid_json");
      const notEvent = await app.deliverRaw(JSON.stringify({ hello: "world" }));
      expect(notEvent.status).toBe(400);
      expect(notEvent.json.error.code).toBe("invalid_request");
      const after = await db.sql`select count(*)::int as n from processor_events`;
      expect(after[0]!.n).toBe(before[0]!.n);
    });

    it("a signed event whose `created` lies beyond year 9999 (or any Date) is 400 invalid_request naming it, and not recorded", async ({
      app,
      db,
    }) => {
      const org = await app.linkedOrg();
      for (const created of [253_402_300_800, 9_000_000_000_000, Number.MAX_SAFE_INTEGER]) {
        const event = app.event(
          "payment_intent.succeeded",
          paymentIntent({ id: id("pi"), customer: org.customerId, cents: 500 }),
          { created },
        );
        const res = await app.deliver(event);
        expect(res.status, `created=${created}: ${res.text}`).toBe(400);
        expect(res.json.error).toMatchObject({ code: "invalid_request", param: "created" });
        expect(await db.sql`select 1 from processor_events where id = ${event.id}`).toEqual([]);
      }
      expect(await app.balanceNano(org.orgKey)).toBe(0n);
      // The last second of year 9999 is still a time: accepted.
      const last = app.event(
        "payment_intent.succeeded",
        paymentIntent({ id: id("pi"), customer: org.customerId, cents: 500 }),
        { created: 253_402_300_799 },
      );
      expect((await app.deliver(last)).json.outcome).toBe("credited");
    });

    it("without STRIPE_WEBHOOK_SECRET a signed delivery is 503 not_configured (the processor retries)", async ({
      app,
      db,
    }) => {
      const unconfigured = createPaymentsTestApp({ sql: db.appSql, secret: null });
      const res = await unconfigured.deliver(payment(app));
      expect(res.status).toBe(503);
      expect(res.json.error).toMatchObject({ type: "api_error", code: "not_configured" });
      app.bodies.push(...unconfigured.bodies);
    });
  });

  describe("payment_intent.succeeded", () => {
    it("credits the exact amount once: card_topup entry org +amount / system:card -amount, keyed by the payment id", async ({
      app,
      db,
    }) => {
      const org = await toppedUp(app, 2599);
      expect(await app.balanceNano(org.orgKey)).toBe(2599n * 10_000_000n); // 25.99 USD exactly
      const balance = await app.call("GET", "/v1/billing/balance", { key: org.orgKey });
      expect(balance.json.balance).toBe(25.99);
      const [txn] = await db.sql<{ id: string; kind: string; idempotency_key: string }[]>`
        select id, kind, idempotency_key from ledger_transactions where org_id = ${org.id}`;
      expect(txn).toMatchObject({ kind: "card_topup", idempotency_key: org.pi });
      const entries = await db.sql<{ account_id: string; amount: bigint }[]>`
        select account_id, amount from ledger_entries where transaction_id = ${txn!.id} order by amount desc`;
      expect(entries).toEqual([
        { account_id: orgCreditsAccount(org.id), amount: 25_990_000_000n },
        { account_id: SystemAccounts.card, amount: -25_990_000_000n },
      ]);
      const [topup] =
        await db.sql`select state, amount_minor, amount_nano_usd, charge_id from card_topups where payment_id = ${org.pi}`;
      expect(topup).toMatchObject({
        state: "credited",
        amount_minor: 2599n,
        amount_nano_usd: 25_990_000_000n,
        charge_id: org.ch,
      });
    });

    it("a live-mode event on this test-mode deployment is recorded and credits nothing", async ({ app }) => {
      const org = await app.linkedOrg();
      const event = {
        ...app.event(
          "payment_intent.succeeded",
          paymentIntent({ id: id("pi"), customer: org.customerId, cents: 5000 }),
        ),
        livemode: true,
      };
      const res = await app.deliver(event);
      expect(res.json).toMatchObject({ received: true, outcome: "wrong_mode" });
      expect(await app.balanceNano(org.orgKey)).toBe(0n);
    });

    it("the same event delivered twice has one effect; the repeat is 200 with a note", async ({ app, db }) => {
      const org = await app.linkedOrg();
      const event = app.event(
        "payment_intent.succeeded",
        paymentIntent({ id: id("pi"), customer: org.customerId, cents: 1000 }),
      );
      const first = await app.deliver(event);
      const again = await app.deliver(event);
      expect(first.json).toEqual({ received: true, duplicate: false, outcome: "credited" });
      expect(again.status).toBe(200);
      expect(again.json).toMatchObject({
        received: true,
        duplicate: true,
        outcome: "credited",
        note: expect.stringMatching(/already handled/),
      });
      expect(await app.balanceNano(org.orgKey)).toBe(10n * USD);
      expect(await ledgerRows(db, org.id)).toHaveLength(1);
    });

    it("10 concurrent deliveries of two different events for one payment credit it once", async ({ app, db }) => {
      const org = await app.linkedOrg();
      const pi = id("pi");
      const a = app.event("payment_intent.succeeded", paymentIntent({ id: pi, customer: org.customerId, cents: 4200 }));
      const b = app.event("payment_intent.succeeded", paymentIntent({ id: pi, customer: org.customerId, cents: 4200 }));
      const results = await Promise.all(Array.from({ length: 10 }, (_, i) => app.deliver(i % 2 ? a : b)));
      expect(results.map((r) => r.status)).toEqual(Array(10).fill(200));
      expect(results.filter((r) => !r.json.duplicate)).toHaveLength(2); // one first delivery per event id
      expect(results.filter((r) => !r.json.duplicate && r.json.outcome === "credited")).toHaveLength(1);
      expect(results.filter((r) => !r.json.duplicate && r.json.outcome === "already_credited")).toHaveLength(1);
      expect(await app.balanceNano(org.orgKey)).toBe(42n * USD);
      expect(await ledgerRows(db, org.id)).toEqual([
        { kind: "card_topup", idempotency_key: pi, amount: "42000000000" },
      ]);
      const events = await db.sql`select count(*)::int as n from processor_events where id in (${a.id}, ${b.id})`;
      expect(events[0]!.n).toBe(2);
    });

    it("a non-usd payment is recorded as refused and credits nothing", async ({ app, db }) => {
      const org = await app.linkedOrg();
      const pi = id("pi");
      const res = await app.deliver(
        app.event(
          "payment_intent.succeeded",
          paymentIntent({ id: pi, customer: org.customerId, cents: 5000, currency: "eur" }),
        ),
      );
      expect(res.status).toBe(200);
      expect(res.json.outcome).toBe("refused_currency");
      expect(await app.balanceNano(org.orgKey)).toBe(0n);
      expect(await ledgerRows(db, org.id)).toEqual([]);
      const [topup] =
        await db.sql`select state, reason, currency, amount_nano_usd from card_topups where payment_id = ${pi}`;
      expect(topup).toEqual({
        state: "refused",
        reason: "unsupported_currency: eur",
        currency: "eur",
        amount_nano_usd: null,
      });
      // A refund of it reverses nothing: nothing was credited.
      const refund = await app.deliver(
        app.event(
          "charge.refunded",
          charge({ id: id("ch"), paymentIntent: pi, cents: 5000, refundedCents: 5000, currency: "eur" }),
        ),
      );
      expect(refund.json.outcome).toBe("not_credited");
      expect(await app.balanceNano(org.orgKey)).toBe(0n);
    });

    it("an unknown customer is recorded and acknowledged, changes nothing, and a redelivery after linking credits once", async ({
      app,
      db,
    }) => {
      const org = await app.createOrg();
      const customerId = id("cus");
      const pi = id("pi");
      const event = app.event(
        "payment_intent.succeeded",
        paymentIntent({ id: pi, customer: customerId, cents: 1500, metadata: { org_id: org.id } }),
      );
      const res = await app.deliver(event);
      expect(res.status).toBe(200);
      expect(res.json).toEqual({ received: true, duplicate: false, outcome: "unknown_customer" });
      // metadata.org_id is not trusted to route money: only the customer link is.
      expect(await app.balanceNano(org.orgKey)).toBe(0n);
      expect((await db.sql`select count(*)::int as n from card_topups where payment_id = ${pi}`)[0]!.n).toBe(0);
      const [recorded] = await db.sql`select type, outcome, org_id from processor_events where id = ${event.id}`;
      expect(recorded).toEqual({ type: "payment_intent.succeeded", outcome: "unknown_customer", org_id: null });

      const link = await app.call("PUT", `/v1/admin/orgs/${org.id}/processor-customer`, {
        key: TEST_ADMIN_KEY,
        body: { customer_id: customerId },
      });
      expect(link.status).toBe(201);
      const resent = await app.deliver(event);
      expect(resent.json).toEqual({ received: true, duplicate: false, outcome: "credited" });
      const again = await app.deliver(event);
      expect(again.json).toMatchObject({ duplicate: true, outcome: "credited" });
      expect(await app.balanceNano(org.orgKey)).toBe(15n * USD);
    });

    it("an event type we do not handle is acknowledged and ignored", async ({ app }) => {
      const res = await app.deliver(app.event("invoice.created", { id: "in_1TstIgnored", object: "invoice" }));
      expect(res.status).toBe(200);
      expect(res.json.outcome).toBe("ignored");
    });

    it("a signed payment object missing what we need is 400 and not recorded, so the processor retries it", async ({
      app,
      db,
    }) => {
      const event = app.event("payment_intent.succeeded", { id: id("pi"), object: "payment_intent", currency: "usd" });
      const res = await app.deliver(event);
      expect(res.status).toBe(400);
      expect(res.json.error.code).toBe("invalid_request");
      expect(res.json.error.message).toContain("amount_received");
      expect((await db.sql`select 1 from processor_events where id = ${event.id}`).length).toBe(0);
    });
  });

  describe("refunds and disputes", () => {
    it("a partial then a full refund reverse exactly what was refunded, once each, whatever the order", async ({
      app,
      db,
    }) => {
      const org = await toppedUp(app, 5000);
      const refund = (refundedCents: number) =>
        app.event("charge.refunded", charge({ id: org.ch, paymentIntent: org.pi, cents: 5000, refundedCents }));
      const partial = refund(1250);
      expect((await app.deliver(partial)).json.outcome).toBe("reversed");
      expect(await app.balanceNano(org.orgKey)).toBe(3750n * 10_000_000n);
      expect((await app.deliver(partial)).json.duplicate).toBe(true);

      const full = refund(5000);
      const late = refund(1250); // another event for the first refund, arriving after the second
      expect((await app.deliver(full)).json.outcome).toBe("reversed");
      expect((await app.deliver(late)).json.outcome).toBe("nothing_to_reverse");
      expect(await app.balanceNano(org.orgKey)).toBe(0n);
      expect(await ledgerRows(db, org.id)).toEqual([
        { kind: "card_topup", idempotency_key: org.pi, amount: "50000000000" },
        { kind: "reversal", idempotency_key: `card-refund:${org.ch}:1250`, amount: "-12500000000" },
        { kind: "reversal", idempotency_key: `card-refund:${org.ch}:5000`, amount: "-37500000000" },
      ]);
      const [topup] =
        await db.sql`select state, reversed_nano_usd, refunded_minor from card_topups where payment_id = ${org.pi}`;
      expect(topup).toEqual({ state: "reversed", reversed_nano_usd: 50_000_000_000n, refunded_minor: 5000n });
    });

    it("a dispute reverses the disputed amount once; the balance may go negative when the credit was already spent", async ({
      app,
      db,
    }) => {
      const org = await toppedUp(app, 2000);
      // The org spends 15 of its 20 USD.
      await db.sql.begin((tx) =>
        postTransaction(tx, {
          kind: "usage",
          orgId: org.id,
          idempotencyKey: `spend-${org.id}`,
          entries: [
            { accountId: orgCreditsAccount(org.id), amount: -15n * USD },
            { accountId: SystemAccounts.revenue, amount: 15n * USD },
          ],
        }),
      );
      const dp = id("dp");
      const created = app.event(
        "charge.dispute.created",
        dispute({ id: dp, charge: org.ch, paymentIntent: org.pi, cents: 2000 }),
      );
      const res = await app.deliver(created);
      expect(res.json.outcome).toBe("reversed");
      // A second event about the same dispute (new event id) reverses nothing more.
      const again = await app.deliver(
        app.event("charge.dispute.created", dispute({ id: dp, charge: org.ch, paymentIntent: org.pi, cents: 2000 })),
      );
      expect(again.json.outcome).toBe("nothing_to_reverse");
      expect(await app.balanceNano(org.orgKey)).toBe(-15n * USD);
      const balance = await app.call("GET", "/v1/billing/balance", { key: org.orgKey });
      expect(balance.json).toMatchObject({ balance: -15, credits: -15, balance_nano_usd: "-15000000000" });
      const rows = await ledgerRows(db, org.id);
      expect(rows.at(-1)).toEqual({ kind: "reversal", idempotency_key: `card-dispute:${dp}`, amount: "-20000000000" });
    });

    it("a won dispute gives back what it took, once, even when its closing events race", async ({ app, db }) => {
      const org = await toppedUp(app, 3000);
      const dp = id("dp");
      const opened = dispute({ id: dp, charge: org.ch, paymentIntent: org.pi, cents: 3000 });
      expect((await app.deliver(app.event("charge.dispute.created", opened))).json.outcome).toBe("reversed");
      expect(await app.balanceNano(org.orgKey)).toBe(0n);

      // Stripe sends both when a dispute is won; they may arrive together, on different replicas.
      const won = { ...opened, status: "won" };
      const [closed, reinstated] = await Promise.all([
        app.deliver(app.event("charge.dispute.closed", won)),
        app.deliver(app.event("charge.dispute.funds_reinstated", won)),
      ]);
      expect([closed.json.outcome, reinstated.json.outcome].sort()).toEqual(["dispute_won", "reinstated"]);
      expect(await app.balanceNano(org.orgKey)).toBe(30n * USD);
      expect((await ledgerRows(db, org.id)).slice(1)).toEqual([
        { kind: "reversal", idempotency_key: `card-dispute:${dp}`, amount: "-30000000000" },
        { kind: "card_topup", idempotency_key: `card-dispute-won:${dp}`, amount: "30000000000" },
      ]);
      const [topup] = await db.sql`select state, reversed_nano_usd from card_topups where payment_id = ${org.pi}`;
      expect(topup).toEqual({ state: "credited", reversed_nano_usd: 0n });
      const [row] =
        await db.sql`select status, reversed_nano_usd, reinstated_nano_usd from card_disputes where dispute_id = ${dp}`;
      expect(row).toEqual({ status: "won", reversed_nano_usd: 30n * USD, reinstated_nano_usd: 30n * USD });
      // A late, contradicting event changes nothing: the first ending is final.
      const lost = await app.deliver(app.event("charge.dispute.closed", { ...opened, status: "lost" }));
      expect(lost.json.outcome).toBe("dispute_won");
      expect(await app.balanceNano(org.orgKey)).toBe(30n * USD);
      await expectLedgerConsistent(db.sql);
    });

    it("a dispute won before it was seen open takes nothing; a lost one keeps what it took", async ({ app, db }) => {
      const org = await toppedUp(app, 1000);
      const early = id("dp");
      const opened = dispute({ id: early, charge: org.ch, paymentIntent: org.pi, cents: 400 });
      expect(
        (await app.deliver(app.event("charge.dispute.closed", { ...opened, status: "warning_closed" }))).json.outcome,
      ).toBe("dispute_won");
      expect((await app.deliver(app.event("charge.dispute.created", opened))).json.outcome).toBe("nothing_to_reverse");
      expect(await app.balanceNano(org.orgKey)).toBe(10n * USD);

      const lostId = id("dp");
      const other = dispute({ id: lostId, charge: org.ch, paymentIntent: org.pi, cents: 600 });
      expect((await app.deliver(app.event("charge.dispute.created", other))).json.outcome).toBe("reversed");
      expect((await app.deliver(app.event("charge.dispute.closed", { ...other, status: "lost" }))).json.outcome).toBe(
        "dispute_lost",
      );
      expect(await app.balanceNano(org.orgKey)).toBe(4n * USD);
      const [topup] = await db.sql`select state, reversed_nano_usd from card_topups where payment_id = ${org.pi}`;
      expect(topup).toEqual({ state: "partially_reversed", reversed_nano_usd: 6n * USD });
    });

    it("a refund made while a dispute held the payment stays refunded when the dispute is won", async ({ app, db }) => {
      const org = await toppedUp(app, 3000);
      const opened = dispute({ id: id("dp"), charge: org.ch, paymentIntent: org.pi, cents: 2000 });
      expect((await app.deliver(app.event("charge.dispute.created", opened))).json.outcome).toBe("reversed"); // 30 → 10
      const refund = await app.deliver(
        app.event("charge.refunded", charge({ id: org.ch, paymentIntent: org.pi, cents: 3000, refundedCents: 1500 })),
      );
      expect(refund.json.outcome).toBe("reversed"); // only 10 was left to take: 10 → 0
      expect(await app.balanceNano(org.orgKey)).toBe(0n);
      // Won: the dispute took 20, but 15 went back to the card, so the org keeps 30 - 15 = 15, not 20.
      expect((await app.deliver(app.event("charge.dispute.closed", { ...opened, status: "won" }))).json.outcome).toBe(
        "reinstated",
      );
      expect(await app.balanceNano(org.orgKey)).toBe(15n * USD);
      const [topup] =
        await db.sql`select state, reversed_nano_usd, refunded_minor from card_topups where payment_id = ${org.pi}`;
      expect(topup).toEqual({ state: "partially_reversed", reversed_nano_usd: 15n * USD, refunded_minor: 1500n });
      await expectLedgerConsistent(db.sql);
    });

    it("a dispute whose state row is missing (opened before card_disputes existed) is given back from its ledger reversal", async ({
      app,
      db,
    }) => {
      const org = await toppedUp(app, 1200);
      const opened = dispute({ id: id("dp"), charge: org.ch, paymentIntent: org.pi, cents: 1200 });
      await app.deliver(app.event("charge.dispute.created", opened));
      await db.sql`delete from card_disputes where dispute_id = ${opened.id}`;
      expect((await app.deliver(app.event("charge.dispute.closed", { ...opened, status: "won" }))).json.outcome).toBe(
        "reinstated",
      );
      expect(await app.balanceNano(org.orgKey)).toBe(12n * USD);
    });

    it("a closing status we do not know leaves the dispute open; money that comes back is given back even after a recorded loss", async ({
      app,
    }) => {
      const org = await toppedUp(app, 1000);
      const opened = dispute({ id: id("dp"), charge: org.ch, paymentIntent: org.pi, cents: 1000 });
      await app.deliver(app.event("charge.dispute.created", opened));
      expect(
        (await app.deliver(app.event("charge.dispute.closed", { ...opened, status: "under_review" }))).json.outcome,
      ).toBe("ignored");
      expect((await app.deliver(app.event("charge.dispute.closed", { ...opened, status: "lost" }))).json.outcome).toBe(
        "dispute_lost",
      );
      expect(await app.balanceNano(org.orgKey)).toBe(0n);
      expect((await app.deliver(app.event("charge.dispute.funds_reinstated", opened))).json.outcome).toBe("reinstated");
      expect(await app.balanceNano(org.orgKey)).toBe(10n * USD);
    });

    it("a dispute and its win that both overtake the payment are applied, in order, when it is credited", async ({
      app,
      db,
    }) => {
      const org = await app.linkedOrg();
      const pi = id("pi");
      const ch = id("ch");
      const dp = id("dp");
      const opened = dispute({ id: dp, charge: ch, paymentIntent: pi, cents: 2500 });
      expect(
        (await app.deliver(app.event("charge.dispute.created", opened, { created: app.nowSeconds() - 2 }))).json
          .outcome,
      ).toBe("awaiting_payment");
      expect(
        (
          await app.deliver(
            app.event("charge.dispute.closed", { ...opened, status: "won" }, { created: app.nowSeconds() - 1 }),
          )
        ).json.outcome,
      ).toBe("awaiting_payment");
      const paid = await app.deliver(
        app.event(
          "payment_intent.succeeded",
          paymentIntent({ id: pi, customer: org.customerId, cents: 2500, charge: ch }),
        ),
      );
      expect(paid.json.outcome).toBe("credited");
      expect(await app.balanceNano(org.orgKey)).toBe(25n * USD);
      expect((await ledgerRows(db, org.id)).map((r) => r.kind)).toEqual(["card_topup", "reversal", "card_topup"]);
    });

    it("a reversal that takes the balance below the low-balance threshold raises one alert; one below it already, none", async ({
      app,
      db,
    }) => {
      const org = await toppedUp(app, 3000); // threshold 10.00
      const alerts = () =>
        db.sql`select a.balance, t.kind from balance_alerts a join ledger_transactions t on t.id = a.transaction_id where a.org_id = ${org.id}`;
      await app.deliver(
        app.event("charge.refunded", charge({ id: org.ch, paymentIntent: org.pi, cents: 3000, refundedCents: 1500 })),
      ); // 30 → 15
      expect(await alerts()).toEqual([]);
      await app.deliver(
        app.event(
          "charge.dispute.created",
          dispute({ id: id("dp"), charge: org.ch, paymentIntent: org.pi, cents: 1000 }),
        ),
      ); // → 5
      expect(await alerts()).toEqual([{ balance: 5n * USD, kind: "reversal" }]);
      await app.deliver(
        app.event("charge.refunded", charge({ id: org.ch, paymentIntent: org.pi, cents: 3000, refundedCents: 2000 })),
      ); // → 0
      expect(await alerts()).toHaveLength(1);
    });

    it("a refund and a dispute together never reverse more than was credited", async ({ app, db }) => {
      const org = await toppedUp(app, 2000);
      await app.deliver(
        app.event("charge.refunded", charge({ id: org.ch, paymentIntent: org.pi, cents: 2000, refundedCents: 500 })),
      );
      // A dispute names only the charge here: it is matched through the payment's charge.
      const res = await app.deliver(
        app.event(
          "charge.dispute.created",
          dispute({ id: id("dp"), charge: org.ch, paymentIntent: null, cents: 2000 }),
        ),
      );
      expect(res.json.outcome).toBe("reversed");
      expect(await app.balanceNano(org.orgKey)).toBe(0n);
      const [topup] = await db.sql`select state, reversed_nano_usd from card_topups where payment_id = ${org.pi}`;
      expect(topup).toEqual({ state: "reversed", reversed_nano_usd: 20n * USD });
    });

    it("a refund that overtakes its payment is kept and applied when the payment is credited", async ({ app, db }) => {
      const org = await app.linkedOrg();
      const pi = id("pi");
      const ch = id("ch");
      const refund = await app.deliver(
        app.event("charge.refunded", charge({ id: ch, paymentIntent: pi, cents: 3000, refundedCents: 1000 })),
      );
      expect(refund.json.outcome).toBe("awaiting_payment");
      expect(await app.balanceNano(org.orgKey)).toBe(0n);
      const paid = await app.deliver(
        app.event(
          "payment_intent.succeeded",
          paymentIntent({ id: pi, customer: org.customerId, cents: 3000, charge: ch }),
        ),
      );
      expect(paid.json.outcome).toBe("credited");
      expect(await app.balanceNano(org.orgKey)).toBe(20n * USD);
      const [kept] = await db.sql`select outcome, org_id from processor_events where awaiting_ref = ${pi}`;
      expect(kept).toEqual({ outcome: "applied_after_payment", org_id: org.id });
    });

    it("a dispute naming only its charge, of a payment credited without its charge id, is applied once charge.succeeded ties them, once however delivered", async ({
      app,
      db,
    }) => {
      const org = await app.linkedOrg();
      const pi = id("pi");
      const ch = id("ch");
      // payment_intent.succeeded without latest_charge (API versions before 2022-11-15): charge_id unknown.
      const paid = await app.deliver(
        app.event("payment_intent.succeeded", paymentIntent({ id: pi, customer: org.customerId, cents: 2500 })),
      );
      expect(paid.json.outcome).toBe("credited");
      const disputed = app.event(
        "charge.dispute.created",
        dispute({ id: id("dp"), charge: ch, paymentIntent: null, cents: 2500 }),
      );
      expect((await app.deliver(disputed)).json.outcome).toBe("awaiting_payment");
      expect(await app.balanceNano(org.orgKey)).toBe(25n * USD);
      // Two charge.succeeded events for the charge (and each twice), all at once: one reversal.
      const linked = charge({ id: ch, paymentIntent: pi, cents: 2500, refundedCents: 0 });
      const a = app.event("charge.succeeded", linked);
      const b = app.event("charge.succeeded", linked);
      const results = await Promise.all([a, b, a, b, disputed].map((e) => app.deliver(e)));
      expect(results.map((r) => r.status)).toEqual([200, 200, 200, 200, 200]);
      expect(await app.balanceNano(org.orgKey)).toBe(0n);
      expect((await ledgerRows(db, org.id)).map((r) => r.kind)).toEqual(["card_topup", "reversal"]);
      const [kept] = await db.sql`select outcome, org_id from processor_events where id = ${disputed.id}`;
      expect(kept).toEqual({ outcome: "applied_after_payment", org_id: org.id });
      const [topup] = await db.sql`select charge_id, state from card_topups where payment_id = ${pi}`;
      expect(topup).toEqual({ charge_id: ch, state: "reversed" });
      await expectLedgerConsistent(db.sql);
    });

    it("a refund naming only its charge, tied to its payment before the payment is credited, is applied by the credit", async ({
      app,
      db,
    }) => {
      const org = await app.linkedOrg();
      const pi = id("pi");
      const ch = id("ch");
      const refunded = charge({ id: ch, paymentIntent: null, cents: 3000, refundedCents: 1000 });
      expect((await app.deliver(app.event("charge.refunded", refunded))).json.outcome).toBe("awaiting_payment");
      await app.deliver(
        app.event("charge.succeeded", charge({ id: ch, paymentIntent: pi, cents: 3000, refundedCents: 0 })),
      );
      expect(await app.balanceNano(org.orgKey)).toBe(0n);
      // Credited by an event that does not name the charge: the refund is kept under the payment now.
      const paid = await app.deliver(
        app.event("payment_intent.succeeded", paymentIntent({ id: pi, customer: org.customerId, cents: 3000 })),
      );
      expect(paid.json.outcome).toBe("credited");
      expect(await app.balanceNano(org.orgKey)).toBe(20n * USD);
      const [kept] = await db.sql`select outcome from processor_events where awaiting_ref = ${pi}`;
      expect(kept).toEqual({ outcome: "applied_after_payment" });
    });

    it("a refund for a payment that is not a top-up of ours changes nothing", async ({ app, db }) => {
      const count = async () => (await db.sql`select count(*)::int as n from ledger_transactions`)[0]!.n as number;
      const before = await count();
      const res = await app.deliver(
        app.event("charge.refunded", charge({ id: id("ch"), paymentIntent: id("pi"), cents: 100, refundedCents: 100 })),
      );
      expect(res.status).toBe(200);
      // Kept in case its payment is still on its way; harmless if it never comes.
      expect(res.json.outcome).toBe("awaiting_payment");
      expect(await count()).toBe(before);
    });
  });

  describe("PUT /v1/admin/orgs/{id}/processor-customer", () => {
    it("links once, is idempotent for the same pair, refuses relinking either side, never echoes the customer id", async ({
      app,
    }) => {
      const a = await app.createOrg("A");
      const b = await app.createOrg("B");
      const cus = id("cus");
      const put = (orgId: string, customerId: string, key = TEST_ADMIN_KEY) =>
        app.call("PUT", `/v1/admin/orgs/${orgId}/processor-customer`, { key, body: { customer_id: customerId } });
      const first = await put(a.id, cus);
      expect(first.status).toBe(201);
      expect(first.json).toEqual({ org_id: a.id, linked: true, linked_at: expect.any(String) });
      const same = await put(a.id, cus);
      expect(same.status).toBe(200);
      expect(same.json.linked_at).toBe(first.json.linked_at);
      const otherCustomer = await put(a.id, id("cus"));
      expect(otherCustomer.status).toBe(409);
      expect(otherCustomer.json.error.code).toBe("conflict");
      const otherOrg = await put(b.id, cus);
      expect(otherOrg.status).toBe(409);
      expect((await put("org_doesnotexist", id("cus"))).status).toBe(404);
      const bad = await put(b.id, "acct_123");
      expect(bad.status).toBe(400);
      expect(bad.json.error.param).toBe("customer_id");
      expect((await put(b.id, id("cus"), a.orgKey)).status).toBe(403);
    });
  });

  it("the ledger stays balanced and every cached balance matches its entries", async ({ db }) => {
    await expectLedgerConsistent(db.sql);
  });

  it("no response (nor the org's GET endpoints) ever shows a card number, a processor id or a secret", async ({
    app,
    db,
  }) => {
    const orgs = await db.sql<{ org_id: string }[]>`select org_id from processor_customers`;
    for (const { org_id } of orgs) {
      const key = await app.call("POST", `/v1/admin/orgs/${org_id}/keys`, {
        key: TEST_ADMIN_KEY,
        body: { scope: "org" },
      });
      for (const path of [
        "/v1/billing/payment-methods",
        "/v1/billing/balance",
        "/v1/billing/transactions?limit=100",
        "/v1/billing/invoices",
      ]) {
        const res = await app.call("GET", path, { key: key.json.key });
        expect(res.status, `${path}: ${res.text}`).toBe(200);
      }
    }
    expect(app.bodies.length).toBeGreaterThan(50);
    expect(findLeaks(app.bodies, [...used, TEST_WEBHOOK_SECRET])).toEqual([]);
  });
});
