import { describe, expect } from "vitest";
import { expectLedgerConsistent } from "../support/ledger.js";
import { waitFor } from "../support/process.js";
import { cardOrg, chargesTest as it } from "../auto-topup/harness.js";
import { openInvoice } from "./open-invoice.js";

const DAY = 86_400_000;

/**
 * The last renewal attempt charges the card, but the processor's answer is lost (fail {after})
 * and it is then down for a while; the customer removes the card before the retry. The retry went
 * to the default card of the moment, found none, and ended the attempt as refused although its
 * request had been charged; the next sweep moved the org to the free plan, and the processor's
 * payment_intent.succeeded then paid the invoice with that very attempt (helper-90). A retry now
 * sends the same request to the card the attempt was first sent to (migration 0056), which the
 * processor replays under the attempt's key: charged, so the org stays on its plan.
 */
describe("the last renewal attempt, paid at the processor but ended here as refused", () => {
  it.scoped({ dbOptions: { max: 20 }, redisLabel: "renewal-same-card" });

  it("an invoice paid by its own renewal charge does not leave the org downgraded", async ({
    app,
    db,
    processor,
    stripe,
    clock,
  }) => {
    const org = await cardOrg(app, processor, stripe, "4000000000000002"); // declines, for attempts 1-3
    const invoice = await openInvoice(app, org);
    const issued = new Date(invoice.issued_at).getTime();
    const attempts = async () =>
      db.sql<{ attempt: number; status: string; reason: string | null }[]>`
        select attempt, status, reason from renewal_charges where invoice_id = ${invoice.id} order by attempt`;
    const failed = (n: number) =>
      waitFor(async () => (await attempts()).filter((a) => a.status === "failed").length === n, { timeoutMs: 60_000 });
    await failed(1);
    clock.set(new Date(issued + 1 * DAY));
    await failed(2);
    clock.set(new Date(issued + 3 * DAY));
    await failed(3);

    // The customer fixes the card; the fourth attempt is charged, but its answer is lost and the
    // processor is then unreachable for a while. Its webhook is late.
    processor.setCardBehavior(org.cardId, "succeed");
    const charging = /^POST \/v1\/payment_intents$/;
    const sent = () => processor.requests.filter((r) => r.path === "/v1/payment_intents").length;
    const before = sent();
    processor.setWebhookMode("hold");
    try {
      processor.fail({ kind: "unreachable", match: charging, count: 1, after: true });
      processor.fail({ kind: "5xx", status: 503, match: charging });
      clock.set(new Date(issued + 7 * DAY));
      await waitFor(async () => sent() >= before + 2, { timeoutMs: 30_000 });
      const charged = [...processor.paymentIntents.values()].filter(
        (pi) => pi.metadata?.hanzo_invoice === invoice.id && pi.status === "succeeded",
      );
      expect(charged, "the fourth attempt was charged at the processor").toHaveLength(1);

      // The customer removes the card (the API detaches it at once).
      const methods = await app.call("GET", "/v1/billing/payment-methods", { key: org.orgKey });
      const removed = await app.call("DELETE", `/v1/billing/payment-methods/${methods.json.payment_methods[0].id}`, {
        key: org.orgKey,
      });
      expect(removed.status, removed.text).toBe(200);
      processor.clearFaults();
      // The workers retry the fourth attempt: either the processor's replay is heard (the payment's
      // id kept on the attempt), or the attempt ends refused and the org is moved to the free plan.
      const downgraded = async () =>
        (await db.sql`select 1 from renewal_downgrades where invoice_id = ${invoice.id}`).length === 1;
      const replayed = async () =>
        (
          await db.sql`select 1 from renewal_charges
                       where invoice_id = ${invoice.id} and attempt = 4 and processor_payment_id is not null`
        ).length === 1;
      await waitFor(async () => (await replayed()) || (await downgraded()), { timeoutMs: 60_000 });
      expect(await downgraded(), "moved to the free plan after a charged attempt").toBe(false);
    } finally {
      processor.setWebhookMode("auto");
    }

    // The processor's word arrives: the fourth attempt's payment succeeded.
    await processor.release();
    await waitFor(
      async () =>
        (await app.call("GET", `/v1/billing/invoices/${invoice.id}`, { key: org.orgKey })).json.status === "paid",
      { timeoutMs: 30_000 },
    );
    const final = await attempts();
    expect(final.at(-1)?.status, "the fourth attempt paid the invoice").toBe("succeeded");
    const [row] = await db.sql<{ plan_id: string }[]>`select plan_id from subscriptions where org_id = ${org.id}`;
    await expectLedgerConsistent(db.sql);
    expect(row?.plan_id, "the org paid its Team renewal: still on Team").toBe("team");
  }, 180_000);
});
