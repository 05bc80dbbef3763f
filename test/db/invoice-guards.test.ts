import { describe, expect } from "vitest";
import type { TestDatabase } from "../support/database.js";
import { dbTest } from "../support/fixtures.js";

/** invoices_guard and invoice_lines_guard (src/db/functions/invoice_guards.sql), tried with plain SQL. */
const org = "org_guards";
/** The file's database with the organization every invoice here belongs to. */
const it = dbTest.extend<{ guardedOrg: string }>({
  guardedOrg: [
    async ({ db }, use) => {
      await db.sql`insert into organizations (id, name, created_at) values (${org}, 'Guards', now())`;
      await use(org);
    },
    { scope: "file", auto: true },
  ],
});

describe("invoice guards", () => {
  let n = 0;
  /** An invoice with one line of 5, written as the close writes it: a draft, then (optionally) issued. */
  async function invoice(db: TestDatabase, status: "draft" | "open" | "paid" | "void") {
    const id = `inv_guard_${++n}`;
    const start = new Date(Date.UTC(2020, n, 1));
    await db.sql`insert into invoices (id, number, org_id, period_start, period_end, status, subtotal, credits_applied, amount_due, created_at)
                 values (${id}, ${`T-${n}`}, ${org}, ${start}, ${new Date(Date.UTC(2020, n + 1, 1))}, 'draft', 5, 0, ${status === "open" ? 5 : 0}, now())`;
    await db.sql`insert into invoice_lines (invoice_id, kind, description, amount) values (${id}, 'adjustment', 'line', 5)`;
    if (status !== "draft") {
      await db.sql`update invoices set status = ${status === "void" ? "open" : status}, issued_at = now() where id = ${id}`;
      if (status === "void") await db.sql`update invoices set status = 'void', voided_at = now() where id = ${id}`;
    }
    return { id, number: `T-${n}` };
  }
  const lines = async (db: TestDatabase, id: string) =>
    (await db.sql<{ amount: bigint }[]>`select amount from invoice_lines where invoice_id = ${id}`).map(
      (l) => l.amount,
    );

  it("a line of an issued invoice cannot be moved to a draft: the guard checks the invoice it leaves", async ({
    db,
  }) => {
    const issued = await invoice(db, "paid");
    const draft = await invoice(db, "draft");
    await expect(
      db.sql`update invoice_lines set invoice_id = ${draft.id} where invoice_id = ${issued.id}`,
    ).rejects.toThrow(`invoice ${issued.number} is paid: its lines cannot be moved to another invoice`);
    expect(await lines(db, issued.id)).toEqual([5n]);
    expect(await lines(db, draft.id)).toEqual([5n]);
  });

  it("nor can a draft's line be moved onto an issued invoice", async ({ db }) => {
    const issued = await invoice(db, "open");
    const draft = await invoice(db, "draft");
    await expect(
      db.sql`update invoice_lines set invoice_id = ${issued.id} where invoice_id = ${draft.id}`,
    ).rejects.toThrow(`invoice ${issued.number} is open: lines cannot be added to it`);
    expect(await lines(db, issued.id)).toEqual([5n]);
  });

  it("lines of an issued invoice cannot be added, changed or deleted, and the message says so", async ({ db }) => {
    const issued = await invoice(db, "void");
    await expect(
      db.sql`insert into invoice_lines (invoice_id, kind, description, amount) values (${issued.id}, 'adjustment', 'sneaky', 1)`,
    ).rejects.toThrow(`invoice ${issued.number} is void: lines cannot be added to it`);
    await expect(db.sql`update invoice_lines set amount = 0 where invoice_id = ${issued.id}`).rejects.toThrow(
      `invoice ${issued.number} is void: its lines cannot change`,
    );
    await expect(db.sql`delete from invoice_lines where invoice_id = ${issued.id}`).rejects.toThrow(
      `invoice ${issued.number} is void: its lines cannot be deleted`,
    );
    expect(await lines(db, issued.id)).toEqual([5n]);
  });

  it("lines of drafts stay free: changed, moved between drafts, deleted", async ({ db }) => {
    const a = await invoice(db, "draft");
    const b = await invoice(db, "draft");
    await db.sql`update invoice_lines set amount = 7 where invoice_id = ${a.id}`;
    await db.sql`update invoice_lines set invoice_id = ${b.id} where invoice_id = ${a.id}`;
    expect(await lines(db, b.id)).toEqual([5n, 7n]);
    await db.sql`delete from invoice_lines where invoice_id = ${b.id}`;
    expect(await lines(db, b.id)).toEqual([]);
  });

  it("an issued invoice changes only by its lifecycle, and the messages name the reason", async ({ db }) => {
    const paid = await invoice(db, "paid");
    await expect(db.sql`update invoices set amount_due = 1 where id = ${paid.id}`).rejects.toThrow(
      `invoice ${paid.number} is issued and immutable; issue a correction instead`,
    );
    await expect(db.sql`update invoices set status = 'void' where id = ${paid.id}`).rejects.toThrow(
      `invoice ${paid.number} is paid and cannot become void: only an open invoice changes status, to paid or void`,
    );
    await expect(db.sql`update invoices set paid_at = now() - interval '1 day' where id = ${paid.id}`).rejects.toThrow(
      `invoice ${paid.number} is paid: paid_at and voided_at change only with its status`,
    );
    await expect(db.sql`delete from invoices where id = ${paid.id}`).rejects.toThrow(
      `invoice ${paid.number} is issued and cannot be deleted`,
    );
    const open = await invoice(db, "open");
    await expect(db.sql`update invoices set status = 'draft' where id = ${open.id}`).rejects.toThrow(
      `invoice ${open.number} is open and cannot become draft`,
    );
    await db.sql`update invoices set status = 'paid', paid_at = now() where id = ${open.id}`;
    // Writing what is already there changes nothing, so it is not refused.
    await db.sql`update invoices set status = status where id = ${open.id}`;
  });
});
