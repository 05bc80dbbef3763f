import fc from "fast-check";
import { describe, expect } from "vitest";
import { createOrganization } from "../../src/billing/organizations.js";
import { orgCreditsAccount, SystemAccounts } from "../../src/ledger/accounts.js";
import { checkLedger } from "../../src/ledger/check.js";
import {
  assertBalanced,
  postTransaction,
  postTransfer,
  transfer,
  UnbalancedPostingError,
} from "../../src/ledger/post-transaction.js";
import type { TestDatabase } from "../support/database.js";
import { dbTest } from "../support/fixtures.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import { testContext } from "../support/context.js";

/** The file's database with one organization, whose accounts the postings here move. */
const it = dbTest.extend<{ orgId: string }>({
  orgId: [
    async ({ db }, use) => use((await createOrganization(testContext(db.sql), { name: "Ledger Co" })).id),
    { scope: "file" },
  ],
});

describe("ledger enforcement in PostgreSQL", () => {
  async function insertRaw(db: TestDatabase, orgId: string, entries: [string, bigint][]) {
    const id = `txn_raw_${Math.random().toString(36).slice(2)}`;
    await db.sql.begin(async (tx) => {
      await tx`insert into ledger_transactions (id, org_id, kind, idempotency_key) values (${id}, ${orgId}, 'grant', ${id})`;
      // A transaction's entries go in one statement, as postTransaction writes them.
      if (entries.length > 0) {
        const rows = entries.map(([account_id, amount]) => ({
          transaction_id: id,
          account_id,
          amount: amount.toString(),
        }));
        await tx`insert into ledger_entries ${tx(rows, "transaction_id", "account_id", "amount")}`;
      }
    });
    return id;
  }

  it("refuses to commit an unbalanced transaction, even when written by hand", async ({ db, orgId }) => {
    await expect(
      insertRaw(db, orgId, [
        [orgCreditsAccount(orgId), 5n],
        [SystemAccounts.grants, -4n],
      ]),
    ).rejects.toThrow(/unbalanced/);
    await expect(insertRaw(db, orgId, [[orgCreditsAccount(orgId), 5n]])).rejects.toThrow(/unbalanced/);
  });

  it("refuses an entry added later to a balanced transaction", async ({ db, orgId }) => {
    const id = await insertRaw(db, orgId, [
      [orgCreditsAccount(orgId), 2n],
      [SystemAccounts.grants, -2n],
    ]);
    await expect(
      db.sql`insert into ledger_entries (transaction_id, account_id, amount) values (${id}, ${orgCreditsAccount(orgId)}, 1)`,
    ).rejects.toThrow(/unbalanced/);
  });

  it("refuses entries naming a transaction or an account that does not exist (23503, as the foreign keys did)", async ({
    db,
    orgId,
  }) => {
    const ghost = `txn_ghost_${Math.random().toString(36).slice(2)}`;
    const missingTransaction = db.sql`
      insert into ledger_entries (transaction_id, account_id, amount)
      values (${ghost}, ${orgCreditsAccount(orgId)}, 4), (${ghost}, ${SystemAccounts.grants}, -4)`;
    await expect(missingTransaction).rejects.toMatchObject({
      code: "23503",
      message: expect.stringMatching(/does not exist/),
    });
    const missingAccount = insertRaw(db, orgId, [
      [orgCreditsAccount(orgId), 6n],
      ["org:org_nobody:credits", -6n],
    ]);
    await expect(missingAccount).rejects.toMatchObject({ code: "23503", message: expect.stringMatching(/org_nobody/) });
    // A system account that was never opened is refused as well (system balances are not cached).
    const missingSystem = insertRaw(db, orgId, [
      [orgCreditsAccount(orgId), 6n],
      ["system:nowhere", -6n],
    ]);
    await expect(missingSystem).rejects.toMatchObject({ code: "23503" });
    const balance = await db.sql`select balance from ledger_accounts where id = ${orgCreditsAccount(orgId)}`;
    await insertRaw(db, orgId, [
      [orgCreditsAccount(orgId), 1n],
      [SystemAccounts.grants, -1n],
    ]);
    const after = await db.sql`select balance from ledger_accounts where id = ${orgCreditsAccount(orgId)}`;
    expect(after[0]!.balance - balance[0]!.balance).toBe(1n); // the refused ones moved nothing
  });

  it("refuses a transaction with no entries", async ({ db, orgId }) => {
    await expect(insertRaw(db, orgId, [])).rejects.toThrow(/has no entries/);
  });

  it("commits a balanced one and updates the balance cache in the same transaction", async ({ db, orgId }) => {
    const before = await db.sql`select balance from ledger_accounts where id = ${orgCreditsAccount(orgId)}`;
    await insertRaw(db, orgId, [
      [orgCreditsAccount(orgId), 7n],
      [SystemAccounts.grants, -7n],
    ]);
    const after = await db.sql`select balance from ledger_accounts where id = ${orgCreditsAccount(orgId)}`;
    expect(after[0]!.balance - before[0]!.balance).toBe(7n);
  });

  it("entries and transactions cannot be updated, deleted or truncated", async ({ db, orgId }) => {
    const id = await insertRaw(db, orgId, [
      [orgCreditsAccount(orgId), 3n],
      [SystemAccounts.grants, -3n],
    ]);
    await expect(db.sql`update ledger_entries set amount = 300 where transaction_id = ${id}`).rejects.toThrow(
      /append-only/,
    );
    await expect(db.sql`delete from ledger_entries where transaction_id = ${id}`).rejects.toThrow(/append-only/);
    await expect(db.sql`update ledger_transactions set kind = 'usage' where id = ${id}`).rejects.toThrow(/append-only/);
    await expect(db.sql`delete from ledger_transactions where id = ${id}`).rejects.toThrow(/append-only/);
    await expect(db.sql`truncate ledger_entries cascade`).rejects.toThrow(/append-only/);
  });

  it("the code path refuses unbalanced postings before PostgreSQL sees them", async ({ db, orgId }) => {
    await expect(
      db.sql.begin((tx) =>
        postTransaction(tx as never, {
          kind: "grant",
          orgId,
          idempotencyKey: "bad",
          entries: [
            { accountId: orgCreditsAccount(orgId), amount: 1n },
            { accountId: SystemAccounts.grants, amount: -2n },
          ],
        }),
      ),
    ).rejects.toThrow(UnbalancedPostingError);
  });

  it("a transfer is two entries summing to zero, and ledger_transfer in SQL writes the same ones", async ({ db }) => {
    const account = fc.stringMatching(/^[a-z:_]{1,12}$/);
    const amount = fc.bigInt({ min: -(2n ** 63n) + 1n, max: 2n ** 63n - 1n }).filter((a) => a !== 0n);
    await fc.assert(
      fc.asyncProperty(account, account, amount, async (from, to, a) => {
        const entries = transfer(from, to, a);
        assertBalanced(entries);
        const rows = await db.sql<{ account_id: string; amount: bigint }[]>`
          select account_id, amount from ledger_transfer('txn_x', ${from}, ${to}, ${a.toString()})`;
        expect(rows.map((r) => ({ accountId: r.account_id, amount: r.amount }))).toEqual(entries);
      }),
      { numRuns: 100 },
    );
  });

  it("postTransfer moves the amount once per key, and the trigger still refuses a lopsided pair", async ({
    db,
    orgId,
  }) => {
    const balance = async () =>
      (
        await db.sql<{ balance: bigint }[]>`select balance from ledger_accounts where id = ${orgCreditsAccount(orgId)}`
      )[0]?.balance;
    const before = await balance();
    const post = () =>
      db.sql.begin((tx) =>
        postTransfer(tx as never, {
          kind: "grant",
          orgId,
          idempotencyKey: "transfer-once",
          from: SystemAccounts.grants,
          to: orgCreditsAccount(orgId),
          amount: 11n,
        }),
      );
    const [first, second] = await Promise.all([post(), post()]);
    expect([first.created, second.created].sort()).toEqual([false, true]);
    expect(first.transactionId).toBe(second.transactionId);
    expect((await balance()) ?? 0n).toBe((before ?? 0n) + 11n);
    await expect(
      insertRaw(db, orgId, [
        [orgCreditsAccount(orgId), 11n],
        [SystemAccounts.grants, 11n],
      ]),
    ).rejects.toThrow(/unbalanced/);
  });

  it("the check finds a tampered cache (triggers disabled by a superuser) and nothing on a healthy ledger", async ({
    db,
    orgId,
  }) => {
    await expectLedgerConsistent(db.sql);
    // Only a superuser can get past the guard trigger: with triggers off for one transaction.
    const tamper = (delta: bigint) =>
      db.sql.begin(async (tx) => {
        await tx`set local session_replication_role = replica`;
        await tx`update ledger_accounts set balance = balance + ${delta} where id = ${orgCreditsAccount(orgId)}`;
      });
    await expect(
      db.sql`update ledger_accounts set balance = balance + 1 where id = ${orgCreditsAccount(orgId)}`,
    ).rejects.toThrow(/balance changes only by posting entries/);
    await tamper(1n);
    const check = await checkLedger(db.sql);
    expect(check.balanceMismatches).toHaveLength(1);
    expect(check.balanceMismatches[0]!.accountId).toBe(orgCreditsAccount(orgId));
    expect(check.balanceMismatches[0]!.cached - check.balanceMismatches[0]!.fromEntries).toBe(1n);
    await tamper(-1n);
  });
});
