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

  it("refuses a missing account among hundreds named in one statement, and applies them all when none is", async ({
    db,
  }) => {
    // As a metering batch posts: one statement of entries for many organizations' accounts.
    const ctx = testContext(db.sql);
    const orgs = await Promise.all(
      Array.from({ length: 300 }, (_, i) => createOrganization(ctx, { name: `Many ${i}` }).then((o) => o.id)),
    );
    const onePerOrg = orgs.map((org): [string, bigint] => [orgCreditsAccount(org), -1n]);
    const missing = insertRaw(db, orgs[0]!, [
      ...onePerOrg.slice(0, 150),
      ["org:org_nobody_among_many:credits", -1n],
      ...onePerOrg.slice(150),
      [SystemAccounts.revenue, 301n],
    ]);
    await expect(missing).rejects.toMatchObject({
      code: "23503",
      message: expect.stringMatching(/org_nobody_among_many/),
    });
    await insertRaw(db, orgs[0]!, [...onePerOrg, [SystemAccounts.revenue, 300n]]);
    const balances = await db.sql<{ balance: bigint }[]>`
      select balance from ledger_accounts where id = any (${orgs.map(orgCreditsAccount)}::text[])`;
    expect(balances.map((b) => b.balance)).toEqual(orgs.map(() => -1n));
  });

  it("refuses a ledger transaction, a hold or a usage event naming what does not exist (23503, as the foreign keys did)", async ({
    db,
    orgId,
  }) => {
    const suffix = Math.random().toString(36).slice(2);
    // A ledger transaction of an organization that does not exist: refused when its entries are written.
    const ghostOrgTxn = db.sql.begin(async (tx) => {
      const id = `txn_ghost_org_${suffix}`;
      await tx`insert into ledger_transactions (id, org_id, kind, idempotency_key) values (${id}, 'org_nobody', 'grant', ${id})`;
      await tx`insert into ledger_entries (transaction_id, account_id, amount)
               values (${id}, ${orgCreditsAccount(orgId)}, 3), (${id}, ${SystemAccounts.grants}, -3)`;
    });
    await expect(ghostOrgTxn).rejects.toMatchObject({ code: "23503", message: expect.stringMatching(/org_nobody/) });

    // A hold of an organization that does not exist, active or not (an active one of amount 0 reserves nothing).
    for (const [status, amount] of [
      ["active", 0],
      ["settled", 5],
    ] as const) {
      const hold = db.sql`
        insert into holds (id, org_id, amount, status, product, model, estimate, catalog_version, expires_at, created_at, closed_at)
        values (${`hold_ghost_${status}_${suffix}`}, 'org_nobody', ${amount}, ${status}, 'llm', 'zen-pro', '{}', 'v1',
                now() + interval '1 minute', now(), ${status === "active" ? null : new Date()})`;
      await expect(hold).rejects.toMatchObject({ code: "23503", message: expect.stringMatching(/org_nobody/) });
    }

    // Usage events naming an organization, a hold or a ledger transaction that does not exist.
    const event = (n: string, org: string, holdId: string | null, txnId: string | null) => db.sql`
      insert into usage_events (id, org_id, idempotency_key, occurred_at, product, model, quantities, cost, catalog_version, hold_id, transaction_id, recorded_at)
      values (${`ue_${n}_${suffix}`}, ${org}, ${`key_${n}_${suffix}`}, now(), 'api', '', '{"requests":"1"}', 0, 'v1', ${holdId}, ${txnId}, now())`;
    await expect(event("org", "org_nobody", null, null)).rejects.toMatchObject({
      code: "23503",
      message: expect.stringMatching(/organization org_nobody/),
    });
    await expect(event("hold", orgId, "hold_nowhere", null)).rejects.toMatchObject({
      code: "23503",
      message: expect.stringMatching(/hold hold_nowhere/),
    });
    await expect(event("txn", orgId, null, "txn_nowhere")).rejects.toMatchObject({
      code: "23503",
      message: expect.stringMatching(/ledger transaction txn_nowhere/),
    });
    // The same event naming only what exists is written, and claims its key.
    await event("ok", orgId, null, null);
    const [key] =
      await db.sql`select event_id from usage_event_keys where org_id = ${orgId} and idempotency_key = ${`key_ok_${suffix}`}`;
    expect(key?.event_id).toBe(`ue_ok_${suffix}`);
  });

  it("refuses a transaction with no entries", async ({ db, orgId }) => {
    await expect(insertRaw(db, orgId, [])).rejects.toThrow(/has no entries/);
  });

  describe("has entries, wherever the transaction's date puts them", () => {
    const now = new Date();
    /** The first instant of the UTC month `delta` months from now's. */
    const monthStart = (delta: number) => new Date(Date.UTC(now.getUTCFullYear(), now.getUTCMonth() + delta, 1));
    const partitionOf = (at: Date) => `ledger_entries_p${at.toISOString().slice(0, 7).replace("-", "_")}`;

    /**
     * Ledger transactions dated `at`, inserted in one statement, then the entries of those whose
     * `withEntries` is true in a later statement of the same database transaction (as the app's
     * role unless `sql` says otherwise).
     */
    async function post(sql: TestDatabase["sql"], orgId: string, at: Date, withEntries: boolean[]) {
      const ids = withEntries.map(() => `txn_dated_${Math.random().toString(36).slice(2)}`);
      await sql.begin(async (tx) => {
        const txns = ids.map((id) => ({ id, org_id: orgId, kind: "grant", idempotency_key: id, created_at: at }));
        await tx`insert into ledger_transactions ${tx(txns, "id", "org_id", "kind", "idempotency_key", "created_at")}`;
        await tx`select 1`;
        const entries = ids
          .filter((_, i) => withEntries[i])
          .flatMap((id) => [
            { transaction_id: id, account_id: orgCreditsAccount(orgId), amount: "1", created_at: at },
            { transaction_id: id, account_id: SystemAccounts.grants, amount: "-1", created_at: at },
          ]);
        if (entries.length > 0)
          await tx`insert into ledger_entries ${tx(entries, "transaction_id", "account_id", "amount", "created_at")}`;
      });
      return ids;
    }
    const refused = { code: "23514", message: expect.stringMatching(/has no entries/) };

    it("this month, the partitions before it and after, the one for years back and the default one", async ({
      db,
      orgId,
    }) => {
      const dates = {
        [partitionOf(monthStart(0))]: new Date(now.getTime() - 1000),
        [partitionOf(monthStart(-2))]: new Date(monthStart(-1).getTime() - 1),
        [partitionOf(monthStart(2))]: monthStart(2),
        ledger_entries_before: new Date("1999-06-01T00:00:00Z"),
        ledger_entries_default: new Date(monthStart(40).getTime() + 5000),
      };
      for (const [partition, at] of Object.entries(dates)) {
        const [ok] = await post(db.appSql, orgId, at, [true]);
        const [row] = await db.sql<{ partition: string }[]>`
          select tableoid::regclass::text as partition from ledger_entries where transaction_id = ${ok!} limit 1`;
        expect(row?.partition, partition).toBe(partition);
        await expect(post(db.appSql, orgId, at, [false]), partition).rejects.toMatchObject(refused);
      }
      await expectLedgerConsistent(db.sql);
    });

    it("several transactions in one statement: one without entries refuses the commit", async ({ db, orgId }) => {
      await expect(post(db.appSql, orgId, now, [true, true, false, true])).rejects.toMatchObject(refused);
      await expect(post(db.appSql, orgId, now, [false, true])).rejects.toMatchObject(refused);
      const ids = await post(db.appSql, orgId, now, [true, true, true]);
      const [row] = await db.sql<{ n: number }[]>`
        select count(*)::int as n from ledger_transactions where id = any(${ids})`;
      expect(row?.n).toBe(3);
    });

    it("a temporary table of the app's cannot stand in for the partitions", async ({ db, orgId }) => {
      const id = `txn_shadow_${Math.random().toString(36).slice(2)}`;
      const at = new Date("1999-06-01T00:00:00Z");
      const shadowed = db.appSql.begin(async (tx) => {
        for (const name of ["ledger_entries", "ledger_entries_before", "ledger_entries_default", partitionOf(now)]) {
          await tx.unsafe(`create temp table ${name} (transaction_id text, created_at timestamptz) on commit drop`);
          await tx.unsafe(`insert into pg_temp.${name} values ($1, $2)`, [id, at]);
        }
        await tx`set local search_path = pg_temp, billing`;
        await tx`insert into billing.ledger_transactions (id, org_id, kind, idempotency_key, created_at)
                 values (${id}, ${orgId}, 'grant', ${id}, ${at})`;
      });
      await expect(shadowed).rejects.toMatchObject(refused);
    });

    it("a month the partition job makes later is checked in its own partition", async ({ db, orgId }) => {
      const month = monthStart(15);
      const definition = () =>
        db.sql<{ src: string }[]>`select prosrc as src from pg_proc where proname = 'ledger_assert_has_entries'`;
      expect((await definition())[0]!.src).not.toContain(partitionOf(month));
      await db.appSql`select * from partitions_ensure(16)`;
      expect((await definition())[0]!.src).toContain(partitionOf(month));
      const [ok] = await post(db.appSql, orgId, month, [true]);
      const [row] = await db.sql<{ partition: string }[]>`
        select tableoid::regclass::text as partition from ledger_entries where transaction_id = ${ok!} limit 1`;
      expect(row?.partition).toBe(partitionOf(month));
      await expect(post(db.appSql, orgId, month, [false])).rejects.toMatchObject(refused);
      await expect(post(db.appSql, orgId, monthStart(16), [false])).rejects.toMatchObject(refused);
      await expectLedgerConsistent(db.sql);
    });
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

  it("a transfer is two entries, from and to, summing to zero", () => {
    const account = fc.stringMatching(/^[a-z:_]{1,12}$/);
    const amount = fc.bigInt({ min: -(2n ** 63n) + 1n, max: 2n ** 63n - 1n }).filter((a) => a !== 0n);
    fc.assert(
      fc.property(account, account, amount, (from, to, a) => {
        const entries = transfer(from, to, a);
        assertBalanced(entries);
        expect(entries).toEqual([
          { accountId: from, amount: -a },
          { accountId: to, amount: a },
        ]);
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
