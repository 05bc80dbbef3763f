import { describe, expect } from "vitest";
import { expectLedgerConsistent } from "../support/ledger.js";
import { waitFor } from "../support/process.js";
import { cardOrg, chargesTest as it, setAutoTopup, spend } from "./harness.js";

const USD = 1_000_000_000n;
const CHARGING = /^POST \/v1\/payment_intents$/;

/**
 * monthly_limit 25.00, amount 25.00: one auto top-up per month at most (found by helper-82).
 *
 * Charge A is paid at the processor but its answer is lost and the card removed, so it ends here
 * as refused (month total back to 0). Charge B (a new card) reserves 25.00. A's late success
 * arrives. B is then declined. A third crossing must be skipped: A's 25.00 filled the month. Before
 * migration 0052, A's late success was added only up to the limit (least(25 + 25, 25)), B's decline
 * then took the month to 0, and the third crossing was charged: 50.00 in a month limited to 25.00.
 */
describe("auto top-up monthly limit after a late success and a decline", () => {
  it.scoped({ dbOptions: { max: 20 }, redisLabel: "month-late-success" });

  it("a charge ended as refused and paid late fills the month: a later crossing is skipped for monthly_limit", async ({
    app,
    db,
    processor,
    stripe,
    clock,
    workers,
  }) => {
    expect(workers).toBeDefined();
    const org = await cardOrg(app, processor, stripe);
    await app.grant(org.id, "60");
    expect((await setAutoTopup(app, org, { threshold: "50.00", amount: "25.00", monthly_limit: "25.00" })).status).toBe(
      200,
    );
    const charges = () =>
      db.sql<{ id: string; status: string; amount: bigint; decline_code: string | null }[]>`
        select id, status, amount, decline_code from auto_topup_charges where org_id = ${org.id} order by created_at`;
    const monthCharged = async () =>
      (
        await db.sql<{ total: bigint }[]>`
          select charged + paid_after_refusal as total from auto_topup_months where org_id = ${org.id}`
      )[0]?.total;
    const piRequests = () => processor.requests.filter((r) => r.method === "POST" && r.path === "/v1/payment_intents");
    const notPayment = (e: { type: string }) => !e.type.startsWith("payment_intent.") && !e.type.startsWith("charge.");

    processor.setWebhookMode("hold");
    // --- A: paid at the processor, answer lost, card removed, ended here as refused.
    const before = piRequests().length;
    processor.fail({ kind: "unreachable", match: CHARGING, count: 1, after: true });
    processor.fail({ kind: "5xx", status: 503, match: CHARGING });
    await spend(app, org, 20); // 60 -> 40: crossing 1
    await waitFor(async () => piRequests().length >= before + 2, { timeoutMs: 30_000 });
    const methods = await app.call("GET", "/v1/billing/payment-methods", { key: org.orgKey });
    const removed = await app.call("DELETE", `/v1/billing/payment-methods/${methods.json.payment_methods[0].id}`, {
      key: org.orgKey,
    });
    expect(removed.status).toBe(200);
    processor.clearFaults();
    clock.advance(10_000);
    await waitFor(async () => (await charges())[0]?.status === "declined", { timeoutMs: 30_000 });
    expect(await monthCharged()).toBe(0n);
    const paidA = [...processor.paymentIntents.values()].filter(
      (pi) => pi.customer === org.customerId && pi.status === "succeeded",
    );
    expect(paidA).toHaveLength(1); // the processor did charge A

    // --- B: a new default card that declines; its charge is reserved but cannot reach the processor yet.
    const cardB = processor.addCard(org.customerId, "4000000000000002");
    await processor.release({ pick: notPayment });
    let bId = "";
    await waitFor(async () => {
      const res = await app.call("GET", "/v1/billing/payment-methods", { key: org.orgKey });
      bId = res.json.payment_methods.find((m: { last4: string }) => m.last4 === "0002")?.id ?? "";
      return bId !== "";
    });
    expect((await app.call("POST", `/v1/billing/payment-methods/${bId}/default`, { key: org.orgKey })).status).toBe(
      200,
    );
    await processor.release({ pick: notPayment });
    processor.fail({ kind: "5xx", status: 503, match: CHARGING });
    await app.grant(org.id, "20"); // 60
    await spend(app, org, 20); // 40: crossing 2 -> B reserved
    await waitFor(async () => (await charges()).length === 2, { timeoutMs: 30_000 });
    expect(await monthCharged()).toBe(25n * USD);

    // --- A's success arrives: A succeeds and is credited; the month holds A and B.
    await processor.release({ pick: (e) => e.type.startsWith("payment_intent.") || e.type.startsWith("charge.") });
    await waitFor(async () => (await charges())[0]?.status === "succeeded", { timeoutMs: 30_000 });
    expect(await app.balanceNano(org.orgKey)).toBe(65n * USD);

    // --- B reaches the processor and is declined.
    processor.clearFaults();
    clock.advance(10_000);
    await waitFor(async () => (await charges())[1]?.status === "declined", { timeoutMs: 60_000 });
    await processor.release();
    processor.setWebhookMode("auto");

    // --- C: the card works again; a third crossing in the same month.
    processor.setCardBehavior(cardB.id, "succeed");
    await spend(app, org, 20); // 65 -> 45: crossing 3
    await waitFor(
      async () =>
        (await db.sql`select 1 from auto_topup_crossings where org_id = ${org.id} and decided_at is not null`)
          .length === 3,
      { timeoutMs: 60_000 },
    );
    await processor.idle();
    await waitFor(async () => (await charges()).every((c) => c.status !== "pending"), { timeoutMs: 60_000 });
    const all = await charges();
    const succeeded = all.filter((c) => c.status === "succeeded").reduce((s, c) => s + c.amount, 0n);
    const paidAtProcessor = [...processor.paymentIntents.values()]
      .filter((pi) => pi.customer === org.customerId && pi.status === "succeeded")
      .reduce((s, pi) => s + pi.amount, 0);
    await expectLedgerConsistent(db.sql);
    // When crossing 3 was decided, A's 25.00 had succeeded this month (credited, status succeeded):
    // the month was full, so crossing 3 is skipped for monthly_limit.
    const [third] = await db.sql<{ outcome: string; reason: string | null }[]>`
      select c.outcome, c.reason from auto_topup_crossings c join ledger_transactions t on t.id = c.transaction_id
      where c.org_id = ${org.id} order by t.seq desc limit 1`;
    expect({
      third: third?.reason ?? third?.outcome,
      succeededCharges: succeeded,
      paidAtProcessorCents: paidAtProcessor,
      monthTotal: await monthCharged(),
    }).toEqual({
      third: "monthly_limit",
      succeededCharges: 25n * USD,
      paidAtProcessorCents: 2500,
      monthTotal: 25n * USD,
    });
  }, 180_000);
});
