import { randomBytes } from "node:crypto";
import postgres from "postgres";
import { describe, expect, it } from "vitest";
import { createSql } from "../../src/db/client.js";
import { migrate } from "../../src/db/migrate.js";
import { APP_LOGIN, withUser } from "../../src/db/roles.js";
import { orgCreditsAccount, SystemAccounts } from "../../src/ledger/accounts.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import { migrateUpTo } from "../support/migrations.js";
import { databaseUrl, TEST_PG_URL } from "../support/services.js";

const MIGRATION = "0035_partitioned_history";

/**
 * Migration 0035 on a database with history: usage events of several months (a late one among
 * them) and ledger transactions posted in several months, whose entries were dated by the
 * database's clock at insert. Every row moves to its month's partition, entries take their
 * transaction's created_at, balances are not applied a second time, identities go on, and the
 * triggers and rights are in place on the new tables.
 */
describe(`migration ${MIGRATION}`, () => {
  it("moves every row into its month's partition and keeps the ledger's and the keys' rules", async () => {
    const name = `hanzo_t_mig_parts_${randomBytes(4).toString("hex")}`;
    const admin = postgres(TEST_PG_URL, { max: 1, onnotice: () => {} });
    await admin.unsafe(`create database "${name}"`);
    const sql = createSql(databaseUrl(name), { max: 2 });
    const appSql = createSql(withUser(databaseUrl(name), APP_LOGIN), { max: 1 });
    try {
      await migrateUpTo(sql, MIGRATION);

      await sql`insert into organizations (id, name) values ('org_old', 'Old')`;
      await sql`insert into ledger_accounts (id, org_id, kind) values
        ('org:org_old:credits', 'org_old', 'org_credits'), ('org:org_old:held', 'org_old', 'org_held')`;
      const posted = ["2025-06-10T10:00:00Z", "2026-02-03T04:05:06.789Z", "2026-02-28T23:59:59.999Z"];
      for (const [k, at] of posted.entries()) {
        const id = `txn_old_${k}`;
        await sql.begin(async (tx) => {
          await tx`insert into ledger_transactions (id, org_id, kind, idempotency_key, created_at)
                   values (${id}, 'org_old', 'grant', ${id}, ${at})`;
          await tx`insert into ledger_entries (transaction_id, account_id, amount) values
                   (${id}, ${orgCreditsAccount("org_old")}, ${1000 + k}), (${id}, ${SystemAccounts.grants}, ${-1000 - k})`;
        });
      }
      const events = [
        ["use_a", "2025-06-15T00:00:00Z"],
        ["use_b", "2026-02-01T00:00:00Z"],
        ["use_c", "2026-01-31T23:59:59.999Z"],
      ];
      for (const [id, at] of events)
        await sql`insert into usage_events (id, org_id, idempotency_key, occurred_at, product, quantities, cost, catalog_version, transaction_id, recorded_at)
                  values (${id!}, 'org_old', ${`key-${id}`}, ${at!}, 'llm', '{"input_tokens": 1}', 7, '2026-01-01', 'txn_old_1', now())`;
      const [balanceBefore] = await sql<{ balance: bigint }[]>`
        select balance from ledger_accounts where id = ${orgCreditsAccount("org_old")}`;
      expect(balanceBefore?.balance).toBe(3003n);

      await migrate(sql);

      const usage = await sql<{ id: string; partition: string; seq: bigint }[]>`
        select id, tableoid::regclass::text as partition, seq from usage_events order by id`;
      expect(usage.map(({ id, partition }) => ({ id, partition }))).toEqual([
        { id: "use_a", partition: "usage_events_p2025_06" },
        { id: "use_b", partition: "usage_events_p2026_02" },
        { id: "use_c", partition: "usage_events_p2026_01" },
      ]);
      expect(usage.map((u) => u.seq)).toEqual([1n, 2n, 3n]);
      const entries = await sql<{ transaction_id: string; partition: string; same: boolean }[]>`
        select e.transaction_id, e.tableoid::regclass::text as partition, e.created_at = t.created_at as same
        from ledger_entries e join ledger_transactions t on t.id = e.transaction_id order by e.id`;
      expect(entries).toEqual([
        { transaction_id: "txn_old_0", partition: "ledger_entries_p2025_06", same: true },
        { transaction_id: "txn_old_0", partition: "ledger_entries_p2025_06", same: true },
        { transaction_id: "txn_old_1", partition: "ledger_entries_p2026_02", same: true },
        { transaction_id: "txn_old_1", partition: "ledger_entries_p2026_02", same: true },
        { transaction_id: "txn_old_2", partition: "ledger_entries_p2026_02", same: true },
        { transaction_id: "txn_old_2", partition: "ledger_entries_p2026_02", same: true },
      ]);
      const [first] = await sql<{ first_month: string }[]>`
        select to_char(first_month, 'YYYY-MM') as first_month from partitioned_tables where table_name = 'usage_events'`;
      expect(first?.first_month).toBe("2025-06");
      // Balances moved with nothing applied twice.
      const [balanceAfter] = await sql<{ balance: bigint }[]>`
        select balance from ledger_accounts where id = ${orgCreditsAccount("org_old")}`;
      expect(balanceAfter?.balance).toBe(3003n);
      await expectLedgerConsistent(sql);

      // After it, as the app: the keys of the moved events are taken, identities go on from the
      // copied rows, and the ledger's triggers guard the new table.
      const insertEvent = (id: string, key: string, at: string) =>
        appSql`insert into usage_events (id, org_id, idempotency_key, occurred_at, product, quantities, cost, catalog_version, recorded_at)
               values (${id}, 'org_old', ${key}, ${at}, 'llm', '{}', 0, '2026-01-01', now()) returning seq`;
      await expect(insertEvent("use_d", "key-use_a", "2026-03-01T00:00:00Z")).rejects.toThrow(/usage_event_keys_pkey/);
      const [fresh] = await insertEvent("use_e", "key-new", "2026-03-01T00:00:00Z");
      expect(fresh?.seq).toBeGreaterThan(3n); // the refused insert above took a number too
      await expect(
        appSql.begin(async (tx) => {
          await tx`insert into ledger_transactions (id, org_id, kind, idempotency_key) values ('txn_new', 'org_old', 'grant', 'txn_new')`;
          await tx`insert into ledger_entries (transaction_id, account_id, amount) values ('txn_new', ${orgCreditsAccount("org_old")}, 5)`;
        }),
      ).rejects.toThrow(/unbalanced/);
      const [entry] = await appSql.begin(async (tx) => {
        await tx`insert into ledger_transactions (id, org_id, kind, idempotency_key) values ('txn_new', 'org_old', 'grant', 'txn_new')`;
        return tx<{ id: bigint }[]>`insert into ledger_entries (transaction_id, account_id, amount) values
          ('txn_new', ${orgCreditsAccount("org_old")}, 5), ('txn_new', ${SystemAccounts.grants}, -5) returning id`;
      });
      expect(entry?.id).toBeGreaterThan(6n);
      await expect(appSql`update usage_events set cost = 0`).rejects.toThrow(/permission denied/);
      await expect(sql`update usage_events set cost = 0`).rejects.toThrow(/append-only/);
      await expect(appSql.unsafe("select 1 from usage_events_p2026_02")).rejects.toThrow(/permission denied/);
      await expectLedgerConsistent(sql);
    } finally {
      await Promise.all([sql.end({ timeout: 5 }), appSql.end({ timeout: 5 })]);
      await admin.unsafe(`drop database if exists "${name}" with (force)`);
      await admin.end();
    }
  });
});
