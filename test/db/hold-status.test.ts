import { readFile } from "node:fs/promises";
import { describe, expect } from "vitest";
import type { TestDatabase } from "../support/database.js";
import { dbTest } from "../support/fixtures.js";

/** holds_status_check (src/db/migrations/0022_hold_status.sql): a hold is active, settled or expired. */
const org = "org_hold_status";
const it = dbTest.extend<{ holdOrg: string }>({
  holdOrg: [
    async ({ db }, use) => {
      await db.sql`insert into organizations (id, name, created_at) values (${org}, 'Hold status', now())`;
      await use(org);
    },
    { scope: "file", auto: true },
  ],
});

let n = 0;
/** A zero-amount hold (no ledger transaction needed) with the given status; resolves to its id. */
async function insertHold(db: TestDatabase, status: string): Promise<string> {
  const id = `hold_status_${++n}`;
  await db.sql`insert into holds (id, org_id, amount, status, product, estimate, catalog_version, expires_at, created_at)
               values (${id}, ${org}, 0, ${status}, 'llm', '{}', 'v1', now() + interval '1 hour', now())`;
  return id;
}

async function refusal(run: () => Promise<unknown>): Promise<{ code?: string; constraint?: string }> {
  try {
    await run();
  } catch (err) {
    const e = err as { code?: string; constraint_name?: string };
    return { code: e.code, constraint: e.constraint_name };
  }
  return {};
}

describe("hold status", () => {
  const checkViolation = { code: "23514", constraint: "holds_status_check" };

  it.for(["active", "settled", "expired"])("a hold may be written as %s", async (status, { db }) => {
    const id = await insertHold(db, status);
    const [row] = await db.sql<{ status: string }[]>`select status from holds where id = ${id}`;
    expect(row?.status).toBe(status);
  });

  it("inserting a 'released' hold is refused by holds_status_check", async ({ db }) => {
    expect(await refusal(() => insertHold(db, "released"))).toEqual(checkViolation);
  });

  it("updating a hold to 'released' is refused, and the hold keeps its status", async ({ db }) => {
    const id = await insertHold(db, "active");
    expect(await refusal(() => db.sql`update holds set status = 'released' where id = ${id}`)).toEqual(checkViolation);
    const [row] = await db.sql<{ status: string }[]>`select status from holds where id = ${id}`;
    expect(row?.status).toBe("active");
  });

  it("the migration stops, saying why, if a hold has 'released' (tried in a rolled-back transaction)", async ({
    db,
  }) => {
    const migration = await readFile(new URL("../../src/db/migrations/0022_hold_status.sql", import.meta.url), "utf8");
    const rollback = new Error("rollback");
    const outcome = await db.sql
      .begin(async (tx) => {
        await tx`alter table holds drop constraint holds_status_check`;
        await tx`insert into holds (id, org_id, amount, status, product, estimate, catalog_version, expires_at, created_at)
                 values ('hold_status_old', ${org}, 0, 'released', 'llm', '{}', 'v1', now(), now())`;
        await tx.unsafe(migration);
        throw rollback;
      })
      .catch((err: Error) => err);
    expect(outcome).not.toBe(rollback);
    expect((outcome as Error).message).toMatch(/holds has rows with status 'released'/);
    const [c] = await db.sql<
      { n: number }[]
    >`select count(*)::int as n from pg_constraint where conname = 'holds_status_check'`;
    expect(c?.n).toBe(1);
  });
});
