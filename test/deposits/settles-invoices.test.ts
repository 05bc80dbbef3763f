import type { Hex } from "viem";
import { describe, expect } from "vitest";
import { auditCreditedDeposits } from "../../src/billing/deposits/audit.js";
import { verifyDeposit } from "../../src/billing/deposits/verify.js";
import { createTestApp, manualClock, TEST_ADMIN_KEY, type TestApp } from "../support/app.js";
import { chainTest } from "../support/chain-fixtures.js";
import { depositContext } from "../support/context.js";
import { depositMovements, expectDepositInvariants } from "../support/deposit-invariants.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import { chainReorg } from "../support/reorg.js";

const HUSD = 10n ** 18n;
const USD = 1_000_000_000n;
const DAY = 86_400_000;

type Invoice = { id: string; status: string; amount_due_nano_usd: string };

type Books = {
  /** The app on a settable clock, for closing cycles (the chain stack's app runs on the wall clock). */
  app: TestApp;
  /** An org with a deposit address and one open invoice per amount, oldest first, each its own closed cycle. */
  orgOwing(name: string, dues: bigint[]): Promise<{ id: string; orgKey: string; address: Hex; invoices: Invoice[] }>;
  statuses(orgKey: string): Promise<Map<string, string>>;
  /** Registers the transfer (as the org's top-up call would), makes its block final and runs the checks the workers run. */
  creditTransfer(orgKey: string, hash: Hex, blockNumber: bigint): Promise<string>;
  workersRun(): Promise<void>;
  reorg: ReturnType<typeof chainReorg>;
};

/**
 * The chain stack plus open invoices: orgs are made and their cycles closed on a clock set 30 days
 * back, so the invoices' periods lie before the wall-clock time the deposits are credited at.
 */
const it = chainTest.extend<{ books: Books }>({
  books: [
    async ({ db, chain, stack }, use) => {
      const clock = manualClock(new Date(Date.now() - 30 * DAY));
      const app = createTestApp({ sql: db.appSql, clock });
      const reorg = chainReorg(chain);
      const deps = () => depositContext(db.sql, stack.chainClient, stack.app.config);

      async function workersRun() {
        await auditCreditedDeposits(deps());
        const pending = await db.sql<
          { id: string }[]
        >`select id from husd_deposits where state in ('seen', 'confirming') order by seen_at`;
        for (const { id } of pending) await verifyDeposit(deps(), { depositId: id });
      }

      async function orgOwing(name: string, dues: bigint[]) {
        const org = await app.createOrg(name);
        for (const [i, due] of dues.entries()) {
          const adjustment = await app.call("POST", `/v1/admin/orgs/${org.id}/adjustments`, {
            key: TEST_ADMIN_KEY,
            headers: { "idempotency-key": `${org.id}-owing-${i}` },
            body: { amount: (Number(due / 10_000_000n) / 100).toFixed(2), description: `Owed ${i}` },
          });
          expect(adjustment.status).toBe(201);
          clock.advance(DAY);
          const closed = await app.call("POST", "/v1/admin/cycles/close", {
            key: TEST_ADMIN_KEY,
            body: { org_id: org.id, end_current_cycle_now: true },
          });
          expect(closed.json.invoices_created).toBe(1);
        }
        const list = await app.call("GET", "/v1/billing/invoices", { key: org.orgKey });
        const invoices = [...list.json.data].reverse() as Invoice[];
        // With no credits, each invoice is open for exactly its adjustment.
        expect(invoices.map((i) => [i.status, BigInt(i.amount_due_nano_usd)])).toEqual(dues.map((d) => ["open", d]));
        const address = await stack.app.call("GET", "/v1/billing/husd/deposit-address", { key: org.orgKey });
        expect(address.status).toBe(200);
        return { id: org.id, orgKey: org.orgKey, address: address.json.address as Hex, invoices };
      }

      async function statuses(orgKey: string) {
        const list = await app.call("GET", "/v1/billing/invoices", { key: orgKey });
        return new Map<string, string>(list.json.data.map((i: Invoice) => [i.id, i.status]));
      }

      async function creditTransfer(orgKey: string, hash: Hex, blockNumber: bigint) {
        const res = await stack.app.call("POST", "/v1/billing/husd/topups", { key: orgKey, body: { tx_hash: hash } });
        expect(res.json.deposits).toHaveLength(1);
        await reorg.mineUntilFinal(blockNumber);
        await workersRun();
        const id = res.json.deposits[0].id as string;
        const [row] = await db.sql<{ state: string }[]>`select state from husd_deposits where id = ${id}`;
        expect(row?.state).toBe("credited");
        return id;
      }

      await use({ app, orgOwing, statuses, creditTransfer, workersRun, reorg });
    },
    { scope: "file" },
  ],
});

/**
 * An HUSD deposit's credit pays the org's open invoices first, in its own transaction: oldest
 * period first, each invoice whole, one the rest cannot cover left open while the next that fits
 * is paid; only the deposit's amount pays (credits already held do not), and the rest stays in
 * credits (README "Top-ups pay open invoices first", src/billing/invoices/settle-open-invoices.ts).
 */
describe("an HUSD deposit settles open invoices first", () => {
  it.scoped({ dbOptions: { max: 8 } });

  it("pays the oldest invoice first, leaves one it cannot cover open, and credits the rest", async ({
    db,
    stack,
    books: { orgOwing, statuses, creditTransfer },
  }) => {
    const org = await orgOwing("Owing Co", [3n * USD, 5n * USD]);
    const [older, newer] = org.invoices as [Invoice, Invoice];

    // 6 HUSD: the older $3 is paid; the newer $5 does not fit in the $3 left and stays open.
    // (Newest first would have paid the $5 and left $1.)
    const first = await stack.sendHusd(org.address, 6n * HUSD);
    const firstId = await creditTransfer(org.orgKey, first.hash, first.blockNumber);
    let now = await statuses(org.orgKey);
    expect([now.get(older.id), now.get(newer.id)]).toEqual(["paid", "open"]);
    expect(await stack.balanceNano(org.orgKey)).toBe(3n * USD);

    // 2 HUSD, less than any open invoice: nothing is paid, all of it goes to credits. The $3
    // already in credits does not count towards the $5 invoice: only the deposit pays.
    const second = await stack.sendHusd(org.address, 2n * HUSD);
    await creditTransfer(org.orgKey, second.hash, second.blockNumber);
    now = await statuses(org.orgKey);
    expect([now.get(older.id), now.get(newer.id)]).toEqual(["paid", "open"]);
    expect(await stack.balanceNano(org.orgKey)).toBe(5n * USD);

    // 5 HUSD: exactly the newer invoice; nothing is added to credits.
    const third = await stack.sendHusd(org.address, 5n * HUSD);
    const thirdId = await creditTransfer(org.orgKey, third.hash, third.blockNumber);
    now = await statuses(org.orgKey);
    expect([now.get(older.id), now.get(newer.id)]).toEqual(["paid", "paid"]);
    expect(await stack.balanceNano(org.orgKey)).toBe(5n * USD);

    // Each invoice paid once, by the deposit credit that paid it, from the org's credits.
    const settlements = await db.sql<{ key: string; paid_by: string; amount: bigint }[]>`
      select t.idempotency_key as key, t.metadata->>'paid_by' as paid_by, -e.amount as amount
      from ledger_transactions t join ledger_entries e on e.transaction_id = t.id and e.account_id = ${`org:${org.id}:credits`}
      where t.kind = 'invoice_settlement' and t.idempotency_key like 'paid:%' order by t.seq`;
    const creditOf = async (depositId: string) =>
      (await db.sql<{ id: string }[]>`select credit_transaction_id as id from husd_deposits where id = ${depositId}`)[0]
        ?.id;
    expect(settlements).toEqual([
      { key: `paid:${older.id}`, paid_by: await creditOf(firstId), amount: 3n * USD },
      { key: `paid:${newer.id}`, paid_by: await creditOf(thirdId), amount: 5n * USD },
    ]);
    await expectDepositInvariants(db.sql);
    await expectLedgerConsistent(db.sql);
  });

  it("skips an oldest invoice the deposit cannot cover and pays a newer one that fits", async ({
    db,
    stack,
    books: { orgOwing, statuses, creditTransfer },
  }) => {
    const org = await orgOwing("Skip Co", [5n * USD, 2n * USD]);
    const [older, newer] = org.invoices as [Invoice, Invoice];
    const sent = await stack.sendHusd(org.address, 3n * HUSD);
    await creditTransfer(org.orgKey, sent.hash, sent.blockNumber);
    const now = await statuses(org.orgKey);
    expect([now.get(older.id), now.get(newer.id)]).toEqual(["open", "paid"]);
    expect(await stack.balanceNano(org.orgKey)).toBe(1n * USD);
    await expectDepositInvariants(db.sql);
    await expectLedgerConsistent(db.sql);
  });

  it("a deposit reorged out after it paid an invoice: the credit is reversed in full, the invoice stays paid, the org owes the difference as a negative balance", async ({
    db,
    stack,
    books: { orgOwing, statuses, creditTransfer, workersRun, reorg },
  }) => {
    const org = await orgOwing("Reorged Co", [3n * USD]);
    const [invoice] = org.invoices as [Invoice];
    const sent = await stack.sendHusd(org.address, 5n * HUSD);
    const id = await creditTransfer(org.orgKey, sent.hash, sent.blockNumber);
    expect((await statuses(org.orgKey)).get(invoice.id)).toBe("paid");
    expect(await stack.balanceNano(org.orgKey)).toBe(2n * USD);

    // A reorg deeper than the policy drops the transfer: the whole $5 credit is reversed. The
    // invoice is not reopened; the $3 it took is now owed as a balance of -$3.
    const raw = await reorg.raw(sent.hash);
    await reorg.replaceFrom(sent.blockNumber);
    await workersRun();
    const [row] = await db.sql<{ state: string }[]>`select state from husd_deposits where id = ${id}`;
    expect(row?.state).toBe("reversed");
    expect(await depositMovements(db.sql, id)).toEqual([
      ["husd_deposit", 5n * USD],
      ["reversal", -5n * USD],
    ]);
    expect((await statuses(org.orgKey)).get(invoice.id)).toBe("paid");
    expect(await stack.balanceNano(org.orgKey)).toBe(-3n * USD);
    // The trace: the settlement stands, once, naming the credit that was reversed, and the
    // reversal raised an operator alert for the deposit.
    const settlements = await db.sql<{ paid_by: string }[]>`
      select metadata->>'paid_by' as paid_by from ledger_transactions where kind = 'invoice_settlement' and idempotency_key = ${`paid:${invoice.id}`}`;
    const [deposit] = await db.sql<
      { credit_transaction_id: string }[]
    >`select credit_transaction_id from husd_deposits where id = ${id}`;
    expect(settlements).toEqual([{ paid_by: deposit?.credit_transaction_id }]);
    expect(
      await db.sql`select 1 from operator_alerts where kind = 'husd_deposit_reversed' and subject = ${id} and acknowledged_at is null`,
    ).toHaveLength(1);
    await expectDepositInvariants(db.sql);
    await expectLedgerConsistent(db.sql);

    // The same transaction mined again and final: credited again; no invoice is open, so it all
    // goes to credits, which brings the org back to where the first credit left it.
    await reorg.resend(raw);
    await reorg.mineUntilFinal(await reorg.blockOf(sent.hash));
    await stack.app.call("POST", "/v1/billing/husd/topups", { key: org.orgKey, body: { tx_hash: sent.hash } });
    await workersRun();
    const [again] = await db.sql<{ state: string }[]>`select state from husd_deposits where id = ${id}`;
    expect(again?.state).toBe("credited");
    expect(await stack.balanceNano(org.orgKey)).toBe(2n * USD);
    expect(
      await db.sql`select 1 from ledger_transactions where kind = 'invoice_settlement' and idempotency_key like 'paid:%' and org_id = ${org.id}`,
    ).toHaveLength(1);
    await expectDepositInvariants(db.sql);
    await expectLedgerConsistent(db.sql);
  });
});
