import { describe, expect } from "vitest";
import { TEST_ADMIN_KEY } from "../support/app.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import { paymentIntent, paymentsTest as it, processorId, type PaymentsTestApp } from "../support/processor.js";

/**
 * A top-up pays open invoices first, oldest first, whole, in the transaction of its credit; the
 * rest goes to credits (src/billing/invoices/settle-open-invoices.ts).
 */
describe("a top-up settles open invoices first", () => {
  it.scoped({ dbOptions: { max: 12 } });

  const topUp = (app: PaymentsTestApp, customerId: string, cents: number) =>
    app.deliver(
      app.event("payment_intent.succeeded", paymentIntent({ id: processorId("pi"), customer: customerId, cents })),
    );

  it("pays the oldest open invoice, then the next that fits, and credits the rest", async ({ app, db }) => {
    const org = await app.linkedOrg();
    await app.call("PUT", `/v1/admin/orgs/${org.id}/subscription`, { key: TEST_ADMIN_KEY, body: { plan_id: "team" } });
    // Team: $200 a month, $250 included. Spend the credits, then close a 3-day cycle, twice:
    // each close charges a prorated part of $200 that the (spent) credits cannot cover.
    const owing = await invoicesOpen(app, org, 2);
    expect(owing.map((i) => i.status)).toEqual(["open", "open"]);
    const [older, newer] = owing;
    if (!older || !newer) throw new Error("two open invoices expected");
    const due = (i: { amount_due_nano_usd: string }) => BigInt(i.amount_due_nano_usd);
    // Enough for the older one and half of the newer: the older is paid, the newer stays open.
    const cents = Number((due(older) + due(newer) / 2n) / 10_000_000n) + 1;
    const before = await app.balanceNano(org.orgKey);
    expect((await topUp(app, org.customerId, cents)).status).toBe(200);
    const after = await invoicesById(app, org.orgKey);
    expect(after.get(older.id)).toBe("paid");
    expect(after.get(newer.id)).toBe("open");
    expect(await app.balanceNano(org.orgKey)).toBe(before + BigInt(cents) * 10_000_000n - due(older));
    // The next top-up covers the newer one.
    expect((await topUp(app, org.customerId, Number(due(newer) / 10_000_000n) + 5)).status).toBe(200);
    expect((await invoicesById(app, org.orgKey)).get(newer.id)).toBe("paid");
    const settlements = await db.sql<{ key: string }[]>`
      select idempotency_key as key from ledger_transactions where org_id = ${org.id} and kind = 'invoice_settlement' and idempotency_key like 'paid:%'
      order by seq`;
    expect(settlements.map((s) => s.key)).toEqual([`paid:${older.id}`, `paid:${newer.id}`]);
    await expectLedgerConsistent(db.sql);
  });

  it("racing top-ups pay an invoice once", async ({ app, db }) => {
    const org = await app.linkedOrg();
    await app.call("PUT", `/v1/admin/orgs/${org.id}/subscription`, { key: TEST_ADMIN_KEY, body: { plan_id: "team" } });
    const [open] = await invoicesOpen(app, org, 1);
    if (!open) throw new Error("an open invoice expected");
    const cents = Number(BigInt(open.amount_due_nano_usd) / 10_000_000n) + 1;
    const results = await Promise.all(Array.from({ length: 8 }, () => topUp(app, org.customerId, cents)));
    expect(results.map((r) => r.status)).toEqual(Array(8).fill(200));
    const paid =
      await db.sql`select 1 from ledger_transactions where kind = 'invoice_settlement' and idempotency_key = ${`paid:${open.id}`}`;
    expect(paid).toHaveLength(1);
    expect(await app.balanceNano(org.orgKey)).toBe(
      (await creditsBeforeTopups(db, org.id)) + 8n * BigInt(cents) * 10_000_000n - BigInt(open.amount_due_nano_usd),
    );
    await expectLedgerConsistent(db.sql);
  });

  /** Spends the org's credits to zero through usage, then closes `n` short cycles, each leaving an amount due. */
  async function invoicesOpen(app: PaymentsTestApp, org: { id: string; orgKey: string }, n: number) {
    for (let i = 0; i < n; i++) {
      await drain(app, org);
      app.clock.advance(3 * 86_400_000);
      const closed = await app.call("POST", "/v1/admin/cycles/close", {
        key: TEST_ADMIN_KEY,
        body: { org_id: org.id, end_current_cycle_now: true },
      });
      expect(closed.status).toBe(200);
    }
    const list = await app.call("GET", "/v1/billing/invoices", { key: org.orgKey });
    return [...list.json.data].reverse() as { id: string; status: string; amount_due_nano_usd: string }[];
  }

  async function invoicesById(app: PaymentsTestApp, orgKey: string) {
    const list = await app.call("GET", "/v1/billing/invoices", { key: orgKey });
    return new Map<string, string>(list.json.data.map((i: { id: string; status: string }) => [i.id, i.status]));
  }

  /** Credits spent to exactly zero with a negative adjustment-free debit: an admin grant's opposite is usage. */
  async function drain(app: PaymentsTestApp, org: { id: string; orgKey: string }) {
    const balance = await app.balanceNano(org.orgKey);
    if (balance <= 0n) return;
    const gateway = await app.call("POST", "/v1/admin/keys", {
      key: TEST_ADMIN_KEY,
      body: { scope: "gateway", name: "gateway" },
    });
    // api requests cost 0.0001 USD = 100,000 nano-USD each.
    const requests = Number(balance / 100_000n);
    const res = await app.call("POST", "/v1/billing/usage", {
      key: gateway.json.key,
      body: {
        events: [
          {
            idempotency_key: `drain-${Math.random()}`,
            org_id: org.id,
            timestamp: app.clock().toISOString(),
            product: "api",
            quantities: { requests },
          },
        ],
      },
    });
    expect(res.status).toBe(200);
  }

  async function creditsBeforeTopups(db: { sql: import("../../src/db/client.js").Sql }, orgId: string) {
    const [row] = await db.sql<{ b: bigint }[]>`
      select coalesce(sum(e.amount), 0)::bigint as b from ledger_entries e join ledger_transactions t on t.id = e.transaction_id
      where e.account_id = ${`org:${orgId}:credits`} and t.kind <> 'card_topup' and not (t.kind = 'invoice_settlement' and t.idempotency_key like 'paid:%')`;
    return row?.b ?? 0n;
  }
});
