import { readFile } from "node:fs/promises";
import { describe, expect } from "vitest";
import { dbTest as it } from "../support/fixtures.js";

/**
 * The ledger kind of a hold's expiry (src/db/migrations/0023_hold_expiry_kind.sql): 'hold_expiry',
 * and 'release' no longer accepted; rows posted as 'release' are relabelled, nothing else changes.
 */
const rollback = new Error("rollback");

describe("ledger kind hold_expiry", () => {
  it("a transaction of kind 'release' is refused by ledger_transactions_kind_check", async ({ db }) => {
    const outcome = await db.sql
      .begin(async (tx) => {
        await tx`insert into ledger_transactions (id, kind, idempotency_key) values ('txn_kind_release', 'release', 'txn_kind_release')`;
        throw rollback;
      })
      .catch((err: { code?: string; constraint_name?: string }) => err);
    expect(outcome).toMatchObject({ code: "23514", constraint_name: "ledger_transactions_kind_check" });
  });

  it("the migration relabels 'release' rows, keeps their entries, and leaves the ledger append-only (tried in a rolled-back transaction)", async ({
    db,
  }) => {
    const migration = await readFile(
      new URL("../../src/db/migrations/0023_hold_expiry_kind.sql", import.meta.url),
      "utf8",
    );
    const outcome = await db.sql
      .begin(async (tx) => {
        // The ledger as it was before the migration: 'release' allowed, one such transaction.
        await tx`alter table ledger_transactions drop constraint ledger_transactions_kind_check`;
        await tx`alter table ledger_transactions add constraint ledger_transactions_kind_check
                 check (kind in ('grant', 'grant_expiry', 'husd_deposit', 'card_topup', 'hold', 'release', 'usage', 'invoice_settlement', 'reversal'))`;
        await tx`insert into ledger_transactions (id, kind, idempotency_key, description, metadata)
                 values ('txn_old_release', 'release', 'txn_old_release', 'expired holds released', '{"holds": 2}')`;
        await tx`insert into ledger_entries (transaction_id, account_id, amount)
                 values ('txn_old_release', 'system:grants', -7), ('txn_old_release', 'system:revenue', 7)`;
        // The deferred has-entries check runs now: ALTER TABLE refuses a table with pending trigger events.
        await tx`set constraints all immediate`;
        await tx.unsafe(migration);
        const [row] = await tx<{ kind: string; description: string; metadata: unknown }[]>`
          select kind, description, metadata from ledger_transactions where id = 'txn_old_release'`;
        const entries = await tx<{ account_id: string; amount: string }[]>`
          select account_id, amount::text from ledger_entries where transaction_id = 'txn_old_release' order by account_id`;
        const edit = await tx
          .savepoint((sp) => sp`update ledger_transactions set description = 'x' where id = 'txn_old_release'`)
          .then(
            () => null,
            (err: { code?: string }) => err.code,
          );
        throw Object.assign(rollback, { seen: { row, entries, edit } });
      })
      .catch((err: Error & { seen?: unknown }) => err);
    expect(outcome).toBe(rollback);
    expect((outcome as { seen?: unknown }).seen).toEqual({
      row: { kind: "hold_expiry", description: "expired holds returned to credits", metadata: { holds: 2 } },
      entries: [
        { account_id: "system:grants", amount: "-7" },
        { account_id: "system:revenue", amount: "7" },
      ],
      edit: "42501",
    });
  });
});
