import { describe, expect } from "vitest";
import { collectRenewal } from "../../src/billing/renewals/collect-renewal.js";
import { contextAt } from "../support/context.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import { waitFor } from "../support/process.js";
import { cardOrg, chargesTest as it } from "../auto-topup/harness.js";
import { openInvoice } from "./open-invoice.js";

const DAY = 86_400_000;

/**
 * Renewals that collect, end to end: a cycle closes with plan charges the credits do not cover,
 * the workers charge the default card (fake processor, real SDK), the signed webhook credits it
 * and the credit pays the invoice; a card that keeps failing is retried 1, 3 and 7 days after the
 * invoice was issued (the clock is moved), then the org moves to the free plan.
 */
describe("renewals that collect", () => {
  it.scoped({ dbOptions: { max: 20 }, redisLabel: "renewals" });

  it("a renewal the credits do not cover is charged to the default card; the webhook's credit pays the invoice", async ({
    app,
    db,
    processor,
    stripe,
  }) => {
    const org = await cardOrg(app, processor, stripe);
    const invoice = await openInvoice(app, org);
    const due = BigInt(invoice.amount_due_nano_usd);
    await waitFor(
      async () =>
        (await app.call("GET", `/v1/billing/invoices/${invoice.id}`, { key: org.orgKey })).json.status === "paid",
      { timeoutMs: 60_000 },
    );
    const attempts = await db.sql<{ attempt: number; status: string; amount: bigint }[]>`
      select attempt, status, amount from renewal_charges where invoice_id = ${invoice.id}`;
    expect(attempts).toEqual([
      { attempt: 1, status: "succeeded", amount: ((due + 9_999_999n) / 10_000_000n) * 10_000_000n },
    ]);
    const keys = processor.requests
      .filter((r) => r.method === "POST" && r.path === "/v1/payment_intents")
      .map((r) => r.idempotencyKey);
    expect(keys).toContain(`renewal:${invoice.id}:1`);
    // What was charged beyond the amount due (less than a cent) stays in credits.
    const after = await app.balanceNano(org.orgKey);
    expect(after).toBe((attempts[0]?.amount ?? 0n) - due);
    await expectLedgerConsistent(db.sql);
  });

  it("a failing renewal is retried 1, 3 and 7 days after issue, then the org moves to the free plan", async ({
    app,
    db,
    processor,
    stripe,
    clock,
    logs,
  }) => {
    const org = await cardOrg(app, processor, stripe, "4000000000000002");
    const invoice = await openInvoice(app, org);
    const issued = new Date(invoice.issued_at).getTime();
    const attempts = async () =>
      db.sql<{ attempt: number; status: string }[]>`
        select attempt, status from renewal_charges where invoice_id = ${invoice.id} order by attempt`;
    const failed = (n: number) =>
      waitFor(async () => (await attempts()).filter((a) => a.status === "failed").length === n, { timeoutMs: 60_000 });
    await failed(1);
    for (const [n, days] of [
      [2, 1],
      [3, 3],
      [4, 7],
    ] as const) {
      // A moment before the attempt is due: nothing (asked directly, at that instant).
      const early = contextAt(db.sql, new Date(issued + days * DAY - 60_000));
      expect(await collectRenewal(early, { invoiceId: invoice.id, processor: stripe })).toBe("not_due");
      expect(await attempts()).toHaveLength(n - 1);
      clock.set(new Date(issued + days * DAY));
      await failed(n);
    }
    await waitFor(
      async () => (await db.sql`select 1 from renewal_downgrades where invoice_id = ${invoice.id}`).length === 1,
      { timeoutMs: 60_000 },
    );
    const [sub] = await db.sql<{ plan_id: string }[]>`select plan_id from subscriptions where org_id = ${org.id}`;
    expect(sub?.plan_id).toBe("free");
    expect((await attempts()).map((a) => a.status)).toEqual(["failed", "failed", "failed", "failed"]);
    const [stillOpen] = await db.sql<{ status: string }[]>`select status from invoices where id = ${invoice.id}`;
    expect(stillOpen?.status).toBe("open");
    const notices = await db.sql`select 1 from billing_notices where org_id = ${org.id} and kind = 'renewal_failed'`;
    // Each failed attempt told the customer once (the events outbox).
    const failures =
      await db.sql`select 1 from billing_events where org_id = ${org.id} and type = 'invoice.payment_failed'`;
    expect(failures).toHaveLength(4);
    expect(notices).toHaveLength(1);
    expect(logs.some((l) => l.invoice_id === invoice.id && String(l.msg).includes("free plan"))).toBe(true);
    // Every attempt was its own payment at the processor, each with its own key.
    const keys = processor.requests
      .filter((r) => r.method === "POST" && r.path === "/v1/payment_intents")
      .map((r) => r.idempotencyKey);
    for (const n of [1, 2, 3, 4]) expect(keys).toContain(`renewal:${invoice.id}:${n}`);
    // Later sweeps change nothing more.
    expect(await collectRenewal(contextAt(db.sql, clock()), { invoiceId: invoice.id, processor: stripe })).toBe(
      "already_downgraded",
    );
    await expectLedgerConsistent(db.sql);
  });
});
