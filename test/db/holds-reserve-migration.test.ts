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

const MIGRATION = "0037_holds_reserve_on_credits";

/**
 * Stand-ins for the ledger's triggers before this migration (the real ones are in
 * src/db/functions/ledger.sql, applied after the migrations): the balance cache, and the guard
 * that refuses an account update made outside a trigger. The migration must post through the
 * first and get past the second when they are there, and write the balances itself when not.
 */
const APPLY_TRIGGER = `
  create function pre_0037_apply() returns trigger language plpgsql as $$
  begin
    update ledger_accounts a set balance = a.balance + t.total
    from (select account_id, sum(amount) as total from inserted group by account_id) t
    where a.id = t.account_id and a.kind <> 'system';
    return null;
  end $$;
  create trigger ledger_entries_apply after insert on ledger_entries
    referencing new table as inserted for each statement execute function pre_0037_apply();
  create function pre_0037_guard() returns trigger language plpgsql as $$
  begin
    raise exception 'ledger account %: its balance changes only by posting entries', new.id;
  end $$;
  create trigger ledger_accounts_balance_by_postings before update on ledger_accounts for each row
    when (pg_trigger_depth() < 1) execute function pre_0037_guard();`;

/**
 * Migration 0037 on a database where holds moved money: an org with $10 granted, two live holds
 * and a closed one posted into its held account. The held money goes back to the credits in one
 * 'hold_reservation' transaction, the live holds are reserved on the credits account instead,
 * what the org has and can spend is unchanged, and the holds' triggers keep the reservation from
 * then on.
 */
describe(`migration ${MIGRATION}`, () => {
  for (const balanceTrigger of [true, false]) {
    it(`moves held money back to the credits and reserves the live holds there (balance trigger ${balanceTrigger ? "on" : "absent"})`, async () => {
      const name = `hanzo_t_mig_reserve_${randomBytes(4).toString("hex")}`;
      const admin = postgres(TEST_PG_URL, { max: 1, onnotice: () => {} });
      await admin.unsafe(`create database "${name}"`);
      const sql = createSql(databaseUrl(name), { max: 2 });
      const appSql = createSql(withUser(databaseUrl(name), APP_LOGIN), { max: 1 });
      try {
        await migrateUpTo(sql, MIGRATION);
        if (balanceTrigger) await sql.unsafe(APPLY_TRIGGER);

        const credits = orgCreditsAccount("org_old");
        const held = "org:org_old:held";
        await sql`insert into organizations (id, name) values ('org_old', 'Old')`;
        await sql`insert into ledger_accounts (id, org_id, kind) values
          (${credits}, 'org_old', 'org_credits'), (${held}, 'org_old', 'org_held')`;
        // $10 granted, then holds of $1, $2 (live) and $4 (settled, given back) moved as before.
        const post = async (id: string, kind: string, from: string, to: string, amount: bigint) => {
          await sql.begin(async (tx) => {
            const at = new Date("2026-11-20T10:00:00Z");
            await tx`insert into ledger_transactions (id, org_id, kind, idempotency_key, created_at)
                     values (${id}, 'org_old', ${kind}, ${id}, ${at})`;
            await tx`insert into ledger_entries (transaction_id, account_id, amount, created_at) values
                     (${id}, ${from}, ${(-amount).toString()}, ${at}), (${id}, ${to}, ${amount.toString()}, ${at})`;
          });
          if (!balanceTrigger) {
            await sql`update ledger_accounts set balance = balance - ${amount.toString()} where id = ${from} and kind <> 'system'`;
            await sql`update ledger_accounts set balance = balance + ${amount.toString()} where id = ${to} and kind <> 'system'`;
          }
        };
        const usd = 1_000_000_000n;
        await post("txn_grant", "grant", SystemAccounts.grants, credits, 10n * usd);
        await post("txn_hold", "hold", credits, held, 7n * usd);
        await post("txn_back", "hold_expiry", held, credits, 4n * usd);
        for (const [id, amount, status] of [
          ["hold_1", usd, "active"],
          ["hold_2", 2n * usd, "active"],
          ["hold_4", 4n * usd, "settled"],
        ] as const)
          await sql`insert into holds (id, org_id, amount, status, product, estimate, catalog_version, expires_at, created_at, closed_at, transaction_id)
                    values (${id}, 'org_old', ${amount.toString()}, ${status}, 'api', '{}', '2026-01-01', '2026-11-20T11:00:00Z',
                            '2026-11-20T10:00:00Z', ${status === "active" ? null : new Date("2026-11-20T10:30:00Z")}, 'txn_hold')`;

        await migrate(sql);

        const accounts = await sql<{ id: string; balance: bigint; held: bigint }[]>`
          select id, balance, held from ledger_accounts where org_id = 'org_old' order by id`;
        expect(accounts).toEqual([
          { id: credits, balance: 10n * usd, held: 3n * usd },
          { id: held, balance: 0n, held: 0n },
        ]);
        const moved = await sql<{ kind: string; account_id: string; amount: bigint }[]>`
          select t.kind, e.account_id, e.amount from ledger_transactions t join ledger_entries e on e.transaction_id = t.id
          where t.org_id = 'org_old' and t.kind = 'hold_reservation' order by e.amount`;
        expect(moved).toEqual([
          { kind: "hold_reservation", account_id: held, amount: -3n * usd },
          { kind: "hold_reservation", account_id: credits, amount: 3n * usd },
        ]);
        await expectLedgerConsistent(sql);

        // From now on the holds' triggers keep the reservation, whoever writes the holds.
        await appSql`update holds set status = 'expired', closed_at = now() where id = 'hold_1'`;
        await appSql`insert into holds (id, org_id, amount, status, product, estimate, catalog_version, expires_at, created_at)
                     values ('hold_5', 'org_old', ${(5n * usd).toString()}, 'active', 'api', '{}', '2026-01-01', now() + interval '1 hour', now())`;
        const [after] = await sql<{ held: bigint }[]>`select held from ledger_accounts where id = ${credits}`;
        expect(after?.held).toBe(7n * usd);
        await expect(appSql`update ledger_accounts set held = 0 where id = ${credits}`).rejects.toThrow(
          /changes only by posting/,
        );
        await expect(sql`delete from holds where id = 'hold_5'`).rejects.toThrow(/never deleted/);
        await expectLedgerConsistent(sql);
      } finally {
        await Promise.all([sql.end({ timeout: 5 }), appSql.end({ timeout: 5 })]);
        await admin.unsafe(`drop database if exists "${name}" with (force)`);
        await admin.end();
      }
    });
  }
});
