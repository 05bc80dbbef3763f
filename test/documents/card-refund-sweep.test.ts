import { describe, expect } from "vitest";
import { chargesTest as it } from "../auto-topup/harness.js";
import { payOnPage, requestTopup, topupBody } from "../support/fake-processor.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import { waitFor } from "../support/process.js";
import { creditNote, issueInvoice } from "./invoices.js";

const REFUNDS = /^POST \/v1\/refunds$/;

/**
 * A credit note's card refund whose answer was lost (503 processor_unavailable) stayed pending
 * until someone sent the same request again: the refund the note promised might never be made,
 * or be made and never recorded. The workers' sweep now asks again a minute later, with the same
 * idempotency key, so the processor makes (or answers with) one refund.
 */
describe("credit notes' card refunds left pending", () => {
  it.scoped({ redisLabel: "card-refund-sweep" });

  for (const after of [false, true]) {
    it(`the processor ${after ? "made the refund but its answer was lost" : "was unreachable"}: the workers finish it, one refund`, {
      timeout: 120_000,
    }, async ({ app, clock, db, processor }) => {
      const org = await app.createOrg(`Sweep ${after}`);
      const invoice = await issueInvoice(app, clock, org, { charge: "30" });
      const topup = await requestTopup(app, org.orgKey, topupBody({ amount: "30.00" }));
      expect((await payOnPage(topup.json.url)).status).toBe(303);
      await processor.idle();
      const [t] = await db.sql<{ payment_id: string }[]>`select payment_id from card_topups where org_id = ${org.id}`;
      const balance = await app.balanceNano(org.orgKey);

      processor.fail({ kind: "unreachable", match: REFUNDS, after });
      const body = { lines: [{ description: "Overcharge", amount: "10.00" }], reason: "r", refund: "card" };
      const note = await creditNote(app, invoice.id, body, `sweep-${after}`);
      expect(note.status, note.text).toBe(503);
      processor.clearFaults();
      const status = async () =>
        (await db.sql<{ status: string }[]>`select status from credit_note_refunds where org_id = ${org.id}`)[0]
          ?.status;
      expect(await status()).toBe("pending");

      // Nobody sends the request again. A minute later the sweep does.
      clock.advance(61_000);
      await waitFor(async () => (await status()) === "succeeded", { timeoutMs: 60_000, what: "refund recorded" });
      const made = [...processor.refunds.values()].filter((r) => r.payment_intent === t!.payment_id);
      expect(made.map((r) => r.amount)).toEqual([1000]);
      const shown = await app.call("GET", "/v1/billing/credit-notes", { key: org.orgKey });
      expect(shown.json.data[0].card_refund).toEqual({ status: "succeeded", failure: null });
      expect(await app.balanceNano(org.orgKey)).toBe(balance); // to the card, not from credits
      await expectLedgerConsistent(db.sql);
    });
  }

  it("one left pending over 23 hours is not sent again (the processor forgets keys after 24): an operator alert, once", {
    timeout: 120_000,
  }, async ({ app, clock, db, processor, workers }) => {
    const org = await app.createOrg("Sweep stale");
    const invoice = await issueInvoice(app, clock, org, { charge: "30" });
    const topup = await requestTopup(app, org.orgKey, topupBody({ amount: "30.00" }));
    expect((await payOnPage(topup.json.url)).status).toBe(303);
    await processor.idle();
    const [t] = await db.sql<{ payment_id: string }[]>`select payment_id from card_topups where org_id = ${org.id}`;
    processor.fail({ kind: "unreachable", match: REFUNDS });
    const body = { lines: [{ description: "Overcharge", amount: "10.00" }], reason: "r", refund: "card" };
    const note = await creditNote(app, invoice.id, body, "sweep-stale");
    expect(note.status, note.text).toBe(503);
    // A day later the processor answers again; the sweep must not ask it (it may have forgotten the key).
    processor.clearFaults();
    clock.advance(24 * 3_600_000);
    const alert = async () =>
      (
        await db.sql`select 1 from operator_alerts where kind = 'card_refund_left_pending'
                     and subject in (select credit_note_id from credit_note_refunds where org_id = ${org.id})`
      ).length;
    await waitFor(async () => (await alert()) === 1, { timeoutMs: 60_000, what: "operator alert" });
    // Two more sweeps of card charges, each of which would have enqueued the refund again.
    const sweeps = async () =>
      (await workers.queues.maintenance.getCompleted(0, 1000)).filter((j) => j.name === "card-charges").length;
    const seen = await sweeps();
    await waitFor(async () => (await sweeps()) >= seen + 2, { timeoutMs: 60_000, what: "two more sweeps" });
    await processor.idle();
    // An operator's retry of the same request is refused too, for the same reason.
    const retry = await creditNote(app, invoice.id, body, "sweep-stale");
    expect({ status: retry.status, code: retry.json.error?.code }).toEqual({ status: 409, code: "conflict" });
    const [row] = await db.sql<{ status: string }[]>`select status from credit_note_refunds where org_id = ${org.id}`;
    expect(row?.status).toBe("pending");
    expect([...processor.refunds.values()].filter((r) => r.payment_intent === t!.payment_id)).toEqual([]);
  });
});
