import { describe, expect } from "vitest";
import type { TestDatabase } from "../support/database.js";
import { dbTest } from "../support/fixtures.js";

/** credit_note_guards.sql and the billing-details part of invoice_guards.sql, tried with plain SQL. */
const org = "org_cn_guards";
const it = dbTest.extend<{ guardedOrg: string }>({
  guardedOrg: [
    async ({ db }, use) => {
      await db.sql`insert into organizations (id, name, created_at) values (${org}, 'CN guards', now())`;
      await use(org);
    },
    { scope: "file", auto: true },
  ],
});

describe("credit note guards", () => {
  let n = 0;
  /** An issued invoice with a subtotal of 10 (nano-USD), written as the close writes it. */
  async function invoice(db: TestDatabase, status: "draft" | "paid" = "paid") {
    const id = `inv_cng_${++n}`;
    const start = new Date(Date.UTC(2020, n, 1));
    await db.sql`insert into invoices (id, number, org_id, period_start, period_end, status, subtotal, credits_applied, amount_due, billing_details, created_at)
                 values (${id}, ${`T-${n}`}, ${org}, ${start}, ${new Date(Date.UTC(2020, n + 1, 1))}, 'draft', 10, 10, 0,
                         ${db.sql.json({ legal_name: "As issued" })}, now())`;
    if (status !== "draft") await db.sql`update invoices set status = ${status}, issued_at = now() where id = ${id}`;
    return id;
  }
  async function note(db: TestDatabase, invoiceId: string, total: number, lines: number[] = [total]) {
    const id = `cn_g_${++n}`;
    await db.sql.begin(async (tx) => {
      await tx`insert into credit_notes (id, number, org_id, invoice_id, reason, refund_method, total, idempotency_key, request_fingerprint, issued_at)
               values (${id}, ${`CN-${String(n).padStart(6, "0")}`}, ${org}, ${invoiceId}, 'r', 'credits', ${total}, ${id}, 'f', now())`;
      for (const amount of lines)
        await tx`insert into credit_note_lines (credit_note_id, description, amount) values (${id}, 'l', ${amount})`;
    });
    return id;
  }

  it("a credit note and its lines refuse UPDATE, DELETE and TRUNCATE, from the owner too", async ({ db }) => {
    const id = await note(db, await invoice(db), 4);
    await expect(db.sql`update credit_notes set total = 1 where id = ${id}`).rejects.toThrow(/immutable/);
    await expect(db.sql`update credit_notes set reason = 'other' where id = ${id}`).rejects.toThrow(/immutable/);
    await expect(db.sql`delete from credit_notes where id = ${id}`).rejects.toThrow(/immutable/);
    await expect(db.sql`update credit_note_lines set amount = 1 where credit_note_id = ${id}`).rejects.toThrow(
      /immutable/,
    );
    await expect(db.sql`delete from credit_note_lines where credit_note_id = ${id}`).rejects.toThrow(/immutable/);
    await expect(db.sql`truncate credit_note_lines`).rejects.toThrow(/immutable/);
    // The app's role may not even try.
    await expect(db.appSql`update credit_notes set reason = 'x' where id = ${id}`).rejects.toThrow(/permission denied/);
    const [row] = await db.sql`select total, reason from credit_notes where id = ${id}`;
    expect(row).toEqual({ total: 4n, reason: "r" });
  });

  it("notes of one invoice never total more than its subtotal, and never credit a draft", async ({ db }) => {
    const inv = await invoice(db);
    await note(db, inv, 6);
    await expect(note(db, inv, 5)).rejects.toThrow(/subtotal 10 has 4 left/);
    await note(db, inv, 4);
    await expect(note(db, inv, 1)).rejects.toThrow(/has 0 left/);
    await expect(note(db, await invoice(db, "draft"), 1)).rejects.toThrow(/draft/);
  });

  it("a note's lines add up to its total at commit: none missing, none added later", async ({ db }) => {
    const inv = await invoice(db);
    await expect(note(db, inv, 5, [2, 2])).rejects.toThrow(/lines sum to 4/);
    await expect(note(db, inv, 5, [])).rejects.toThrow(/lines sum to 0/);
    const id = await note(db, inv, 5, [2, 3]);
    await expect(
      db.sql`insert into credit_note_lines (credit_note_id, description, amount) values (${id}, 'late', 1)`,
    ).rejects.toThrow(/lines sum to 6/);
  });

  it("an issued invoice's billing details snapshot never changes", async ({ db }) => {
    const inv = await invoice(db);
    await expect(
      db.sql`update invoices set billing_details = ${db.sql.json({ legal_name: "Changed" })} where id = ${inv}`,
    ).rejects.toThrow(/immutable/);
    await expect(db.sql`update invoices set billing_details = null where id = ${inv}`).rejects.toThrow(/immutable/);
  });
});
