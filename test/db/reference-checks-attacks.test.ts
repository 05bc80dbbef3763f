import { spawn } from "node:child_process";
import { describe, expect } from "vitest";
import { createOrganization } from "../../src/billing/organizations.js";
import { createSql, type Sql, type TransactionSql } from "../../src/db/client.js";
import { orgCreditsAccount, SystemAccounts } from "../../src/ledger/accounts.js";
import type { TestDatabase } from "../support/database.js";
import { dbTest } from "../support/fixtures.js";
import { testContext } from "../support/context.js";

// Attacks on migration 0039 and the generated has-entries check (functions/ledger.sql, holds.sql,
// partitions.sql), all as the app's role (hanzo_app_user) sending plain SQL, as a buggy or
// compromised app would. Each test asserts the guarantee: nothing that names a missing
// organization, hold or ledger transaction commits (23503 naming it), and no ledger transaction
// commits without entries (23514).
//
// They broke three things, fixed with them: an organization without a ledger account could be
// given a new id under the rows naming it once their foreign keys were gone (organizations_id_fixed),
// and partitions_ensure wrote a month's bounds in the caller's DateStyle and TimeZone and skipped a
// month the caller had a temporary table named like (functions/partitions.sql).

/** The file's database with one organization (and its credits account), made the app's way. */
const it = dbTest.extend<{ orgId: string }>({
  orgId: [
    async ({ db }, use) => use((await createOrganization(testContext(db.sql), { name: "Attack Co" })).id),
    { scope: "file" },
  ],
});

type Outcome = "committed" | { code?: string; message: string };
/** What running it came to: "committed", or the error's code and message. */
async function outcome(run: () => Promise<unknown>): Promise<Outcome> {
  try {
    await run();
    return "committed";
  } catch (err) {
    const e = err as { code?: string; message: string };
    return { code: e.code, message: e.message };
  }
}
const fk = (what: RegExp) => ({ code: "23503", message: expect.stringMatching(what) });
const noEntries = { code: "23514", message: expect.stringMatching(/has no entries/) };

/** A fresh tag for the ids of one attack, so its leftovers can be found. */
const newTag = () => Math.random().toString(36).slice(2, 10);
const lit = (v: string | null) => (v === null ? "null" : `'${v.replace(/'/g, "''")}'`);
const ts = (at: string) => `timestamptz ${lit(at)}`;

const EVENT_COLS =
  "usage_events (id, org_id, idempotency_key, occurred_at, product, model, quantities, cost, catalog_version, hold_id, transaction_id, recorded_at)";
/** One usage event's VALUES row. */
const eventRow = (id: string, org: string, hold: string | null = null, txn: string | null = null, at = "now()") =>
  `(${lit(id)}, ${lit(org)}, ${lit(`key_${id}`)}, ${at}, 'api', '', '{"requests":"1"}', 0, 'v1', ${lit(hold)}, ${lit(txn)}, now())`;
const insertEvents = (rows: string[]) => `insert into ${EVENT_COLS} values ${rows.join(", ")}`;

const HOLD_COLS =
  "holds (id, org_id, amount, status, product, model, estimate, catalog_version, expires_at, created_at, closed_at)";
/** One hold's VALUES row: active holds of amount 0 reserve nothing, so need no credits account. */
const holdRow = (id: string, org: string, status: "active" | "settled" | "expired" = "settled") =>
  `(${lit(id)}, ${lit(org)}, ${status === "active" ? 0 : 5}, '${status}', 'llm', 'zen-pro', '{}', 'v1',
    now() + interval '1 minute', now(), ${status === "active" ? "null" : "now()"})`;
const insertHolds = (rows: string[]) => `insert into ${HOLD_COLS} values ${rows.join(", ")}`;

/** A ledger transaction's VALUES row, dated `at` (SQL). */
const txnRow = (id: string, org: string | null, at: string) => `(${lit(id)}, ${lit(org)}, 'grant', ${lit(id)}, ${at})`;
const insertTxns = (rows: string[]) =>
  `insert into ledger_transactions (id, org_id, kind, idempotency_key, created_at) values ${rows.join(", ")}`;
/** The two entries of a transaction moving `amount` from `from` to `to`, dated `at` (SQL). */
const entryRows = (txn: string, from: string, to: string, at: string, amount = 3) => [
  `(${lit(txn)}, ${lit(from)}, ${-amount}, ${at})`,
  `(${lit(txn)}, ${lit(to)}, ${amount}, ${at})`,
];
const insertEntries = (rows: string[]) =>
  `insert into ledger_entries (transaction_id, account_id, amount, created_at) values ${rows.join(", ")}`;

/**
 * Runs `script` in one transaction through psql as the app's role. COPY … FROM STDIN goes this
 * way: postgres.js loses an error raised as a COPY ends (where the statement triggers run), and
 * its stream then never finishes.
 */
function psql(db: TestDatabase, script: string): Promise<Outcome> {
  return new Promise((resolve, reject) => {
    const child = spawn(
      "psql",
      [db.appUrl, "-X", "-q", "-v", "ON_ERROR_STOP=1", "-v", "VERBOSITY=verbose", "-f", "-"],
      {
        stdio: ["pipe", "ignore", "pipe"],
      },
    );
    let stderr = "";
    child.stderr.on("data", (chunk) => {
      stderr += chunk;
    });
    child.on("error", reject);
    child.on("close", (status) => {
      if (status === 0) return resolve("committed");
      const m = /ERROR:\s+([0-9A-Z]{5}): (.*)/.exec(stderr);
      resolve(m ? { code: m[1], message: m[2]! } : { message: stderr });
    });
    child.stdin.end(`set search_path = billing;\nbegin;\n${script}\ncommit;\n`);
  });
}
/** A COPY … FROM STDIN of tab-separated rows (\N: null), for psql. */
const copyScript = (statement: string, rows: string[][]) =>
  `${statement};\n${rows.map((r) => r.join("\t")).join("\n")}\n\\.\n`;

/**
 * Every committed row whose id contains `tag` and that names something missing, or a ledger
 * transaction without entries (read as the owner).
 */
async function orphans(db: TestDatabase, tag: string) {
  const like = `%${tag}%`;
  const rows = await db.sql<{ row: string; names: string }[]>`
    select 'usage_events ' || u.id as row, 'organization ' || u.org_id as names from usage_events u
      where u.id like ${like} and not exists (select from organizations o where o.id = u.org_id)
    union all
    select 'usage_events ' || u.id, 'hold ' || u.hold_id from usage_events u
      where u.id like ${like} and u.hold_id is not null and not exists (select from holds h where h.id = u.hold_id)
    union all
    select 'usage_events ' || u.id, 'ledger transaction ' || u.transaction_id from usage_events u
      where u.id like ${like} and u.transaction_id is not null
        and not exists (select from ledger_transactions t where t.id = u.transaction_id)
    union all
    select 'holds ' || h.id, 'organization ' || h.org_id from holds h
      where h.id like ${like} and not exists (select from organizations o where o.id = h.org_id)
    union all
    select 'ledger_transactions ' || t.id, 'organization ' || t.org_id from ledger_transactions t
      where t.id like ${like} and t.org_id is not null and not exists (select from organizations o where o.id = t.org_id)
    union all
    select 'ledger_transactions ' || t.id, 'no entries' from ledger_transactions t
      where t.id like ${like} and not exists (select from ledger_entries e where e.transaction_id = t.id)`;
  return rows.map((r) => `${r.row} names ${r.names}`);
}
/** How many committed rows of the three tables have an id containing `tag`. */
async function written(db: TestDatabase, tag: string) {
  const like = `%${tag}%`;
  const [row] = await db.sql<{ n: number }[]>`
    select ((select count(*) from usage_events where id like ${like}) + (select count(*) from holds where id like ${like})
      + (select count(*) from ledger_transactions where id like ${like}))::int as n`;
  return row!.n;
}

const NOW = new Date();
/** The first instant of the UTC month `delta` months from NOW's. */
const monthStart = (delta: number) => new Date(Date.UTC(NOW.getUTCFullYear(), NOW.getUTCMonth() + delta, 1));
const iso = (d: Date) => d.toISOString();
const partitionName = (d: Date) => `ledger_entries_p${d.toISOString().slice(0, 7).replace("-", "_")}`;

/**
 * Dates a ledger transaction can carry, by where its entries go: month partitions (at their
 * bounds too), the partition for years back, the default one (a month no partition was made
 * for), and the infinities. None of these months is made by this file's committed calls of
 * partitions_ensure (months 4 to 9 ahead).
 */
const DATES: Record<string, string> = {
  "this month": iso(new Date(NOW.getTime() - 1000)),
  "this month's first instant": iso(monthStart(0)),
  "next month's last microsecond": "LAST_MICRO",
  "three months back": iso(new Date(monthStart(-3).getTime() + 3_600_000)),
  "1999 (the before partition)": "1999-06-01T00:00:00Z",
  "-infinity (the before partition)": "-infinity",
  "30 months ahead (default partition)": iso(new Date(monthStart(30).getTime() + 43_200_000)),
  "infinity (default partition)": "infinity",
};
/** The SQL for a date of DATES. */
const dateSql = (at: string) =>
  at === "LAST_MICRO" ? `(${ts(iso(monthStart(2)))} - interval '1 microsecond')` : ts(at);

describe("usage events name only what exists (usage_events_after_insert)", () => {
  it("a multi-row insert mixing good rows and one bad is refused whole, naming the bad one", async ({ db, orgId }) => {
    const tag = newTag();
    const hold = `hold_ok_${tag}`;
    await db.appSql.unsafe(insertHolds([holdRow(hold, orgId)]));
    const bad = {
      organization: (id: string) => eventRow(id, `org_missing_${tag}`),
      hold: (id: string) => eventRow(id, orgId, `hold_missing_${tag}`),
      "ledger transaction": (id: string) => eventRow(id, orgId, hold, `txn_missing_${tag}`),
    };
    for (const [what, row] of Object.entries(bad)) {
      for (const position of [0, 1, 2]) {
        const rows = [0, 1, 2].map((i) =>
          i === position ? row(`ue_bad_${i}_${what[0]}_${tag}`) : eventRow(`ue_ok_${i}_${what[0]}_${tag}`, orgId, hold),
        );
        const result = await outcome(() => db.appSql.unsafe(insertEvents(rows)));
        expect(result, `${what} at ${position}`).toMatchObject(fk(new RegExp(`${what} \\w+_missing_${tag}`)));
      }
    }
    // Dated in every kind of partition, in one statement.
    const spread = ["now()", ts("1999-01-01T00:00:00Z"), ts(iso(monthStart(50))), ts("infinity")].map((at, i) =>
      eventRow(`ue_spread_${i}_${tag}`, i === 3 ? `org_missing_${tag}` : orgId, null, null, at),
    );
    expect(await outcome(() => db.appSql.unsafe(insertEvents(spread)))).toMatchObject(fk(/organization org_missing/));
    expect(await written(db, tag)).toBe(1); // the hold alone
    expect(await orphans(db, tag)).toEqual([]);
  });

  it("INSERT … SELECT, a statement of two inserts (writable CTEs), COPY FROM STDIN and ON CONFLICT DO NOTHING", async ({
    db,
    orgId,
  }) => {
    const tag = newTag();
    const attacks: Record<string, () => Promise<unknown>> = {
      "insert … select": () =>
        db.appSql.unsafe(`insert into ${EVENT_COLS}
          select 'ue_sel_' || g || '_${tag}', case when g = 7 then 'org_missing_${tag}' else ${lit(orgId)} end,
                 'key_sel_' || g || '_${tag}', now(), 'api', '', '{}', 0, 'v1', null, null, now()
          from generate_series(1, 10) g`),
      "two inserts in one statement": () =>
        db.appSql.unsafe(`with a as (${insertEvents([eventRow(`ue_cte_a_${tag}`, orgId)])} returning id),
          b as (${insertEvents([eventRow(`ue_cte_b_${tag}`, orgId, `hold_missing_${tag}`, null, ts(iso(monthStart(60))))])} returning id)
          select * from a, b`),
      "copy from stdin": () =>
        psql(
          db,
          copyScript(`copy ${EVENT_COLS} from stdin`, [
            [
              `ue_copy_1_${tag}`,
              orgId,
              `key_copy_1_${tag}`,
              iso(NOW),
              "api",
              "",
              "{}",
              "0",
              "v1",
              "\\N",
              "\\N",
              iso(NOW),
            ],
            [
              `ue_copy_2_${tag}`,
              orgId,
              `key_copy_2_${tag}`,
              "1990-01-01",
              "api",
              "",
              "{}",
              "0",
              "v1",
              "\\N",
              `txn_missing_${tag}`,
              iso(NOW),
            ],
          ]),
        ).then((r) => {
          if (r !== "committed") throw r;
        }),
      "on conflict do nothing": () =>
        db.appSql.unsafe(
          `${insertEvents([eventRow(`ue_oc_${tag}`, orgId, `hold_missing_${tag}`)])} on conflict do nothing`,
        ),
    };
    for (const [name, attack] of Object.entries(attacks)) {
      expect(await outcome(attack), name).toMatchObject(
        fk(/(organization org|hold hold|ledger transaction txn)_missing_/),
      );
    }
    expect(await written(db, tag)).toBe(0);
  });

  it("what a rolled-back savepoint made is missing again; set constraints changes nothing", async ({ db, orgId }) => {
    const tag = newTag();
    const hold = `hold_sp_${tag}`;
    const txn = `txn_sp_${tag}`;
    const attempt = (eventHold: string | null, eventTxn: string | null, mode: string) =>
      outcome(() =>
        db.appSql.begin(async (tx) => {
          await tx.unsafe(`set constraints all ${mode}`);
          await tx
            .savepoint(async (sp) => {
              await sp.unsafe(insertHolds([holdRow(hold, orgId)]));
              await sp.unsafe(insertTxns([txnRow(txn, orgId, "now()")]));
              await sp.unsafe(insertEntries(entryRows(txn, SystemAccounts.grants, orgCreditsAccount(orgId), "now()")));
              throw new Error("roll back the savepoint");
            })
            .catch(() => {});
          await tx.unsafe(insertEvents([eventRow(`ue_sp_${mode}_${tag}`, orgId, eventHold, eventTxn)]));
        }),
      );
    for (const mode of ["deferred", "immediate"]) {
      expect(await attempt(hold, null, mode), mode).toMatchObject(fk(new RegExp(`hold ${hold}`)));
      expect(await attempt(null, txn, mode), mode).toMatchObject(fk(new RegExp(`ledger transaction ${txn}`)));
    }
    // The usage transaction's old key was deferred: an event naming a transaction made later in
    // the same database transaction is now refused at once, whatever set constraints says.
    const later = await outcome(() =>
      db.appSql.begin(async (tx) => {
        await tx`set constraints all deferred`;
        await tx.unsafe(insertEvents([eventRow(`ue_later_${tag}`, orgId, null, txn)]));
        await tx.unsafe(insertTxns([txnRow(txn, orgId, "now()")]));
        await tx.unsafe(insertEntries(entryRows(txn, SystemAccounts.grants, orgCreditsAccount(orgId), "now()")));
      }),
    );
    expect(later).toMatchObject(fk(new RegExp(`ledger transaction ${txn}`)));
    expect(await written(db, tag)).toBe(0);
  });

  it("an event naming what its own statement or transaction made is written (the checks are not vacuous)", async ({
    db,
    orgId,
  }) => {
    const tag = newTag();
    await db.appSql.begin(async (tx) => {
      await tx.unsafe(`insert into organizations (id, name) values ('org_new_${tag}', 'New')`);
      await tx.unsafe(`with h as (${insertHolds([holdRow(`hold_cte_${tag}`, `org_new_${tag}`)])} returning id)
        ${insertEvents([eventRow(`ue_cte_${tag}`, `org_new_${tag}`, `hold_cte_${tag}`)])}`);
      await tx.unsafe(insertTxns([txnRow(`txn_own_${tag}`, orgId, "now()")]));
      await tx.unsafe(
        insertEntries(entryRows(`txn_own_${tag}`, SystemAccounts.grants, orgCreditsAccount(orgId), "now()")),
      );
      await tx.unsafe(insertEvents([eventRow(`ue_own_${tag}`, orgId, null, `txn_own_${tag}`)]));
    });
    expect(await written(db, tag)).toBe(4);
    expect(await orphans(db, tag)).toEqual([]);
  });
});

describe("holds name only existing organizations (holds_reserve)", () => {
  it("multi-row inserts, INSERT … SELECT, writable CTEs, COPY and ON CONFLICT are refused with 23503 naming it", async ({
    db,
    orgId,
  }) => {
    const tag = newTag();
    const ghost = `org_missing_${tag}`;
    const attacks: Record<string, () => Promise<unknown>> = {};
    for (const status of ["active", "settled", "expired"] as const) {
      attacks[`multi-row, ${status}`] = () =>
        db.appSql.unsafe(
          insertHolds([
            holdRow(`hold_a_${status}_${tag}`, orgId, status),
            holdRow(`hold_b_${status}_${tag}`, ghost, status),
            holdRow(`hold_c_${status}_${tag}`, orgId, status),
          ]),
        );
    }
    attacks["insert … select"] = () =>
      db.appSql.unsafe(`insert into ${HOLD_COLS}
        select 'hold_sel_' || g || '_${tag}', case when g = 3 then ${lit(ghost)} else ${lit(orgId)} end, 0, 'active',
               'llm', 'zen-pro', '{}', 'v1', now() + interval '1 minute', now(), null
        from generate_series(1, 5) g`);
    attacks["two inserts in one statement"] = () =>
      db.appSql.unsafe(`with a as (${insertHolds([holdRow(`hold_cte_a_${tag}`, orgId)])} returning id)
        ${insertHolds([holdRow(`hold_cte_b_${tag}`, ghost)])}`);
    attacks["copy from stdin"] = () =>
      psql(
        db,
        copyScript(`copy ${HOLD_COLS} from stdin`, [
          [`hold_copy_${tag}`, ghost, "5", "settled", "llm", "zen-pro", "{}", "v1", iso(NOW), iso(NOW), iso(NOW)],
        ]),
      ).then((r) => {
        if (r !== "committed") throw r;
      });
    attacks["on conflict do nothing"] = () =>
      db.appSql.unsafe(`${insertHolds([holdRow(`hold_oc_${tag}`, ghost)])} on conflict do nothing`);
    attacks["in a released savepoint, constraints immediate"] = () =>
      db.appSql.begin(async (tx) => {
        await tx`set constraints all immediate`;
        await tx.savepoint((sp) => sp.unsafe(insertHolds([holdRow(`hold_sp_${tag}`, ghost)])));
      });
    for (const [name, attack] of Object.entries(attacks)) {
      expect(await outcome(attack), name).toMatchObject(fk(new RegExp(`organization ${ghost}`)));
    }
    expect(await written(db, tag)).toBe(0);
  });

  it("a hold's organization cannot be changed to one that does not exist, by UPDATE or ON CONFLICT DO UPDATE", async ({
    db,
    orgId,
  }) => {
    const tag = newTag();
    const hold = `hold_move_${tag}`;
    await db.appSql.unsafe(insertHolds([holdRow(hold, orgId, "active")]));
    const moves = [
      `update holds set org_id = 'org_missing_${tag}' where id = ${lit(hold)}`,
      `${insertHolds([holdRow(hold, orgId, "active")])} on conflict (id) do update set org_id = 'org_missing_${tag}'`,
    ];
    for (const move of moves) expect(await outcome(() => db.appSql.unsafe(move)), move).not.toBe("committed");
    expect(await orphans(db, tag)).toEqual([]);
  });

  it("a hold's closing names a ledger transaction that exists (migration 0042), by UPDATE, INSERT or ON CONFLICT", async ({
    db,
    orgId,
  }) => {
    const tag = newTag();
    const hold = `hold_close_${tag}`;
    await db.appSql.unsafe(insertHolds([holdRow(hold, orgId, "active")]));
    const ghost = `txn_missing_${tag}`;
    const closings = [
      `update holds set status = 'settled', closed_at = now(), close_transaction_id = ${lit(ghost)} where id = ${lit(hold)}`,
      `insert into ${HOLD_COLS.replace("closed_at)", "closed_at, close_transaction_id)")}
         values ${holdRow(`hold_closed_${tag}`, orgId).replace(/\)$/, `, ${lit(ghost)})`)}`,
      `${insertHolds([holdRow(hold, orgId, "active")])} on conflict (id) do update set status = 'expired', closed_at = now(),
         close_transaction_id = ${lit(ghost)}`,
    ];
    for (const closing of closings)
      expect(await outcome(() => db.appSql.unsafe(closing)), closing).toMatchObject(
        fk(new RegExp(`transaction ${ghost}`)),
      );
    const [still] = await db.sql<{ status: string; close: string | null }[]>`
      select status, close_transaction_id as close from holds where id = ${hold}`;
    expect(still).toEqual({ status: "active", close: null });
    // Not vacuous: a closing naming a transaction written earlier in the same transaction commits.
    const txn = `txn_close_${tag}`;
    const ok = await psql(
      db,
      `${insertTxns([txnRow(txn, orgId, "now()")])};
       ${insertEntries(entryRows(txn, "system:grants", "system:revenue", "now()"))};
       update holds set status = 'settled', closed_at = now(), close_transaction_id = ${lit(txn)} where id = ${lit(hold)};`,
    );
    expect(ok).toBe("committed");
  });
});

describe("ledger transactions name only existing organizations (ledger_assert_balanced)", () => {
  it("refused when its entries are written, however and whenever they are", async ({ db, orgId }) => {
    const tag = newTag();
    const ghost = `org_missing_${tag}`;
    const credits = orgCreditsAccount(orgId);
    let n = 0;
    /** A transaction of `ghost` dated `at`, its entries written by `write`. */
    const attempt = (at: string, write: (tx: TransactionSql, id: string) => Promise<unknown>) =>
      outcome(() =>
        db.appSql.begin(async (tx) => {
          const id = `txn_ghost_${++n}_${tag}`;
          await tx.unsafe(insertTxns([txnRow(id, ghost, at)]));
          await write(tx, id);
        }),
      );
    const writes: Record<string, (tx: TransactionSql, id: string, at: string) => Promise<unknown>> = {
      "a later statement": (tx, id, at) => tx.unsafe(insertEntries(entryRows(id, SystemAccounts.grants, credits, at))),
      "system accounts only": (tx, id, at) =>
        tx.unsafe(insertEntries(entryRows(id, SystemAccounts.grants, SystemAccounts.revenue, at))),
      "a released savepoint, constraints immediate": async (tx, id, at) => {
        await tx.savepoint(async (sp) => {
          await sp.unsafe(insertEntries(entryRows(id, SystemAccounts.grants, credits, at)));
          await sp`set constraints all immediate`;
        });
      },
      "insert … select": (tx, id, at) =>
        tx.unsafe(`insert into ledger_entries (transaction_id, account_id, amount, created_at)
          select ${lit(id)}, a, s * 4, ${at} from (values (${lit(credits)}, 1), (${lit(SystemAccounts.grants)}, -1)) v(a, s)`),
      "with a good transaction's entries in the same statement": async (tx, id, at) => {
        const good = `${id}_good`.replace("ghost", "fine");
        await tx.unsafe(insertTxns([txnRow(good, orgId, at)]));
        await tx.unsafe(
          insertEntries([
            ...entryRows(good, SystemAccounts.grants, credits, at),
            ...entryRows(id, SystemAccounts.grants, credits, at),
          ]),
        );
      },
    };
    for (const [date, at] of Object.entries(DATES)) {
      for (const [how, write] of Object.entries(writes)) {
        const result = await attempt(dateSql(at), (tx, id) => write(tx, id, dateSql(at)));
        expect(result, `${date}, ${how}`).toMatchObject(fk(new RegExp(`organization ${ghost}`)));
      }
    }
    // Entries by COPY FROM STDIN, dated in every kind of partition.
    for (const [date, at] of Object.entries(DATES)) {
      const id = `txn_ghost_copy_${++n}_${tag}`;
      const when = at === "LAST_MICRO" ? new Date(monthStart(2).getTime() - 1).toISOString() : at;
      const copied = await psql(
        db,
        `${insertTxns([txnRow(id, ghost, ts(when))])};\n` +
          copyScript("copy ledger_entries (transaction_id, account_id, amount, created_at) from stdin", [
            [id, credits, "2", when],
            [id, SystemAccounts.grants, "-2", when],
          ]),
      );
      expect(copied, `${date}, copy from stdin`).toMatchObject(fk(new RegExp(`organization ${ghost}`)));
    }
    // The transaction and its entries in one statement.
    const oneStatement = await outcome(() =>
      db.appSql.unsafe(`with t as (${insertTxns([txnRow(`txn_cte_${tag}`, ghost, "now()")])} returning id)
        ${insertEntries(entryRows(`txn_cte_${tag}`, SystemAccounts.grants, credits, "now()"))}`),
    );
    expect(oneStatement).toMatchObject(fk(new RegExp(`organization ${ghost}`)));
    // Without entries it is refused at commit all the same.
    expect(await attempt("now()", async () => {})).toMatchObject(noEntries);
    expect(await written(db, tag)).toBe(0);
  });
});

describe("no ledger transaction commits without entries (ledger_assert_has_entries)", () => {
  /** Posts a transaction of `orgId` dated `at` (SQL) through `sql`, with entries or not. */
  async function post(sql: Sql, orgId: string, at: string, withEntries: boolean, tag: string) {
    const id = `txn_he_${newTag()}_${tag}`;
    await sql.begin(async (tx) => {
      await tx.unsafe(insertTxns([txnRow(id, orgId, at)]));
      if (withEntries)
        await tx.unsafe(insertEntries(entryRows(id, SystemAccounts.grants, orgCreditsAccount(orgId), at, 1)));
    });
    return id;
  }

  it("at every date: the month partitions and their bounds, years back, the default partition, the infinities", async ({
    db,
    orgId,
  }) => {
    const tag = newTag();
    for (const [date, at] of Object.entries(DATES)) {
      expect(await outcome(() => post(db.appSql, orgId, dateSql(at), true, tag)), date).toBe("committed");
      expect(await outcome(() => post(db.appSql, orgId, dateSql(at), false, tag)), date).toMatchObject(noEntries);
    }
    expect(await orphans(db, tag)).toEqual([]);
  });

  it("with the session's settings turned against it: search_path, temp tables named like partitions, scans, plan cache, time zone", async ({
    db,
    orgId,
  }) => {
    const tag = newTag();
    const session = createSql(db.appUrl, { max: 1 });
    try {
      const names = [
        "ledger_entries",
        "ledger_entries_before",
        "ledger_entries_default",
        partitionName(monthStart(0)),
        partitionName(monthStart(-3)),
        partitionName(monthStart(1)),
      ];
      for (const name of names)
        await session.unsafe(
          `create temp table ${name} (id bigint, transaction_id text, account_id text, amount bigint, created_at timestamptz)`,
        );
      await session.unsafe(`create temp table ledger_transactions (id text, org_id text, created_at timestamptz)`);
      await session.unsafe(`create temp table organizations (id text)`);
      const settings = [
        "set search_path = pg_temp, billing",
        "set enable_indexscan = off",
        "set enable_indexonlyscan = off",
        "set enable_bitmapscan = off",
        "set enable_partition_pruning = off",
        "set plan_cache_mode = force_custom_plan",
        "set timezone = 'Asia/Kolkata'",
        "set datestyle = 'SQL, DMY'",
        "set constraint_exclusion = off",
        // Not an attack: with every scan off, plans cost past jit_above_cost, and compiling them
        // costs ~0.5 s a statement (slow, still right).
        "set jit = off",
      ];
      for (const s of settings) await session.unsafe(s);
      // Every date, seven rounds (plans are cached, generic after five runs); the shadow tables
      // hold "entries" of each transaction posted without any.
      for (let round = 0; round < 7; round++) {
        for (const [date, at] of Object.entries(DATES)) {
          const id = `txn_sh_${round}_${newTag()}_${tag}`;
          const good = await outcome(() =>
            session.begin(async (tx) => {
              await tx.unsafe(`insert into billing.ledger_transactions (id, org_id, kind, idempotency_key, created_at)
                values (${lit(`${id}_ok`)}, ${lit(orgId)}, 'grant', ${lit(`${id}_ok`)}, ${dateSql(at)})`);
              await tx.unsafe(`insert into billing.ledger_entries (transaction_id, account_id, amount, created_at)
                values (${lit(`${id}_ok`)}, ${lit(SystemAccounts.grants)}, -1, ${dateSql(at)}),
                       (${lit(`${id}_ok`)}, ${lit(orgCreditsAccount(orgId))}, 1, ${dateSql(at)})`);
            }),
          );
          expect(good, `${date}, round ${round}, with entries`).toBe("committed");
          const bad = await outcome(() =>
            session.begin(async (tx) => {
              for (const name of names)
                await tx.unsafe(`insert into pg_temp.${name} (id, transaction_id, account_id, amount, created_at)
                  values (1, ${lit(id)}, ${lit(SystemAccounts.grants)}, 1, ${dateSql(at)})`);
              await tx.unsafe(`insert into billing.ledger_transactions (id, org_id, kind, idempotency_key, created_at)
                values (${lit(id)}, ${lit(orgId)}, 'grant', ${lit(id)}, ${dateSql(at)})`);
            }),
          );
          expect(bad, `${date}, round ${round}, without`).toMatchObject(noEntries);
        }
      }
    } finally {
      await session.end({ timeout: 5 });
    }
    expect(await orphans(db, tag)).toEqual([]);
  });

  it("savepoints: entries rolled back, a check fired early inside one, entries of another transaction", async ({
    db,
    orgId,
  }) => {
    const tag = newTag();
    const credits = orgCreditsAccount(orgId);
    const attacks: Record<string, (tx: TransactionSql, id: string) => Promise<unknown>> = {
      "entries in a rolled-back savepoint": (tx, id) =>
        tx
          .savepoint(async (sp) => {
            await sp.unsafe(insertEntries(entryRows(id, SystemAccounts.grants, credits, "now()")));
            throw new Error("roll back");
          })
          .catch(() => {}),
      "the check fired by set constraints immediate inside the savepoint, then rolled back": (tx, id) =>
        tx
          .savepoint(async (sp) => {
            await sp.unsafe(insertEntries(entryRows(id, SystemAccounts.grants, credits, "now()")));
            await sp`set constraints all immediate`;
            await sp`set constraints all deferred`;
            throw new Error("roll back");
          })
          .catch(() => {}),
      "the check fired by naming it, then rolled back": (tx, id) =>
        tx
          .savepoint(async (sp) => {
            await sp.unsafe(insertEntries(entryRows(id, SystemAccounts.grants, credits, "now()")));
            await sp`set constraints ledger_transactions_have_entries immediate`;
            throw new Error("roll back");
          })
          .catch(() => {}),
      "entries of another transaction of the same date": async (tx, id) => {
        await tx.unsafe(insertTxns([txnRow(`${id}_other`, orgId, "now()")]));
        await tx.unsafe(insertEntries(entryRows(`${id}_other`, SystemAccounts.grants, credits, "now()")));
      },
      "entries refused in a savepoint, the error swallowed": (tx, id) =>
        tx
          .savepoint((sp) => sp.unsafe(insertEntries(entryRows(id, SystemAccounts.grants, credits, "now()", 0))))
          .catch(() => {}),
      "entries in a DO block whose exception handler swallows the failure": (tx, id) =>
        tx.unsafe(`do $$ begin
            ${insertEntries(entryRows(id, SystemAccounts.grants, credits, "now()"))};
            raise exception 'undo';
          exception when others then null;
          end $$`),
    };
    for (const [name, attack] of Object.entries(attacks)) {
      const id = `txn_sp_${newTag()}_${tag}`;
      const result = await outcome(() =>
        db.appSql.begin(async (tx) => {
          await tx.unsafe(insertTxns([txnRow(id, orgId, "now()")]));
          await attack(tx, id);
        }),
      );
      expect(result, name).toMatchObject(noEntries);
    }
    expect(await orphans(db, tag)).toEqual([]);
  });

  it("months the partition job makes: before, in the same transaction, and seen by a session whose check was compiled earlier", async ({
    db,
    orgId,
  }) => {
    const tag = newTag();
    const at = (delta: number) => ts(iso(new Date(monthStart(delta).getTime() + 3_600_000)));
    // A session whose has-entries check is compiled and cached before the months below are made.
    const early = createSql(db.appUrl, { max: 1 });
    try {
      for (let i = 0; i < 6; i++) await post(early, orgId, "now()", true, tag);
      await post(early, orgId, at(5), true, tag);
      // Month 5 already has a posting (in the default partition): the job leaves it there.
      const made = await db.appSql<{ table_name: string; month: string; outcome: string }[]>`
        select table_name, to_char(month, 'YYYY-MM') as month, outcome from partitions_ensure(6)`;
      const month5 = made.find((r) => r.table_name === "ledger_entries" && r.month === iso(monthStart(5)).slice(0, 7));
      expect(month5?.outcome).toBe("in_default");
      for (const sql of [db.appSql, early]) {
        for (const delta of [4, 5, 6]) {
          expect(await outcome(() => post(sql, orgId, at(delta), true, tag)), `month ${delta}`).toBe("committed");
          expect(await outcome(() => post(sql, orgId, at(delta), false, tag)), `month ${delta}`).toMatchObject(
            noEntries,
          );
        }
      }
      // Month 7, made in the transaction itself: before the transaction's entries, or after a
      // transaction without any.
      const sameTxn = (entries: boolean) =>
        outcome(() =>
          db.appSql.begin(async (tx) => {
            const id = `txn_m7_${newTag()}_${tag}`;
            await tx.unsafe(insertTxns([txnRow(id, orgId, at(7))]));
            await tx`select * from partitions_ensure(7)`;
            if (entries)
              await tx.unsafe(insertEntries(entryRows(id, SystemAccounts.grants, orgCreditsAccount(orgId), at(7))));
          }),
        );
      expect(await sameTxn(false)).toMatchObject(noEntries);
      expect(await sameTxn(true)).toBe("committed");
      // Month 8 made by another session while `early` keeps its compiled check.
      await db.appSql`select * from partitions_ensure(8)`;
      expect(await outcome(() => post(early, orgId, at(8), false, tag))).toMatchObject(noEntries);
      const id = await post(early, orgId, at(8), true, tag);
      const [row] = await db.sql<{ partition: string }[]>`
        select tableoid::regclass::text as partition from ledger_entries where transaction_id = ${id} limit 1`;
      expect(row?.partition).toBe(partitionName(monthStart(8)));
      // Month 9 made by another session while a repeatable-read transaction dated in it is open:
      // its entries, written after, land in the new partition, and its check finds them there.
      const during = (entries: boolean) =>
        outcome(() =>
          early.begin("isolation level repeatable read", async (tx) => {
            const txn = `txn_m9_${newTag()}_${tag}`;
            await tx.unsafe(insertTxns([txnRow(txn, orgId, at(9))]));
            await db.appSql`select * from partitions_ensure(9)`;
            if (entries)
              await tx.unsafe(insertEntries(entryRows(txn, SystemAccounts.grants, orgCreditsAccount(orgId), at(9))));
          }),
        );
      expect(await during(true)).toBe("committed");
      expect(await db.sql`select 1 from pg_class where relname = ${partitionName(monthStart(9))}`).toHaveLength(1);
      expect(await during(false)).toMatchObject(noEntries);
    } finally {
      await early.end({ timeout: 5 });
    }
    expect(await orphans(db, tag)).toEqual([]);
  });
});

describe("ledger accounts name only existing organizations (ledger_accounts_org_exists, migration 0045)", () => {
  const account = (org: string, kind: string) => `(${lit(`org:${org}:${kind}`)}, ${lit(org)}, ${lit(kind)})`;
  const insertAccounts = (rows: string[]) => `insert into ledger_accounts (id, org_id, kind) values ${rows.join(", ")}`;
  /** The committed accounts whose id contains `tag` and whose organization does not exist. */
  const orphanAccounts = async (db: TestDatabase, tag: string) =>
    (
      await db.sql<{ id: string }[]>`
        select a.id from ledger_accounts a
        where a.id like ${`%${tag}%`} and not exists (select from organizations o where o.id = a.org_id)`
    ).map((r) => r.id);

  it("an account opened for a missing organization is refused with 23503 naming it, however it is written", async ({
    db,
  }) => {
    const tag = newTag();
    const good = `org_acc_${tag}`;
    const missing = `org_missing_${tag}`;
    await db.appSql.unsafe(`insert into organizations (id, name) values (${lit(good)}, 'Accounts')`);
    const attempts = {
      "one row": insertAccounts([account(missing, "org_credits")]),
      "a good row, then the bad one": insertAccounts([account(good, "org_credits"), account(missing, "org_credits")]),
      "INSERT … SELECT": `insert into ledger_accounts (id, org_id, kind) select 'org:' || o || ':org_credits', o, 'org_credits'
        from unnest(array[${lit(good)}, ${lit(missing)}]) o`,
      "ON CONFLICT DO NOTHING": `${insertAccounts([account(missing, "org_credits")])} on conflict do nothing`,
    };
    for (const [how, statement] of Object.entries(attempts))
      expect(await outcome(() => db.appSql.unsafe(statement)), how).toMatchObject(
        fk(new RegExp(`organization ${missing}`)),
      );
    const copied = await psql(
      db,
      copyScript("copy ledger_accounts (id, org_id, kind) from stdin", [
        [`org:${missing}:org_credits`, missing, "org_credits"],
      ]),
    );
    expect(copied).toMatchObject(fk(new RegExp(`organization ${missing}`)));
    // An account can be moved to no organization by neither UPDATE nor ON CONFLICT DO UPDATE.
    await db.appSql.unsafe(insertAccounts([account(good, "org_credits")]));
    const moves = {
      update: `update ledger_accounts set org_id = ${lit(missing)} where id = ${lit(`org:${good}:org_credits`)}`,
      "on conflict do update": `${insertAccounts([account(good, "org_credits")])} on conflict (id) do update set org_id = ${lit(missing)}`,
    };
    for (const [how, statement] of Object.entries(moves))
      expect(await outcome(() => db.appSql.unsafe(statement)), how).toMatchObject({ code: "42501" });
    expect(await orphanAccounts(db, tag)).toEqual([]);
  });

  it("an account opened in the transaction that made its organization is written (the check is not vacuous)", async ({
    db,
  }) => {
    const tag = newTag();
    const org = `org_new_${tag}`;
    await db.appSql.begin(async (tx) => {
      await tx.unsafe(`insert into organizations (id, name) values (${lit(org)}, 'New')`);
      await tx.unsafe(insertAccounts([account(org, "org_credits")]));
    });
    const [row] = await db.sql<{ n: number }[]>`select count(*)::int as n from ledger_accounts where org_id = ${org}`;
    expect(row!.n).toBe(1);
    expect(await orphanAccounts(db, tag)).toEqual([]);
  });
});

describe("an organization's id stays while anything names it", () => {
  /** An organization with no ledger account, and a hold, a usage event and a ledger transaction naming it. */
  async function named(tx: TransactionSql, org: string, tag: string) {
    await tx.unsafe(insertHolds([holdRow(`hold_rn_${tag}`, org, "settled")]));
    await tx.unsafe(insertEvents([eventRow(`ue_rn_${tag}`, org)]));
    await tx.unsafe(insertTxns([txnRow(`txn_rn_${tag}`, org, "now()")]));
    await tx.unsafe(insertEntries(entryRows(`txn_rn_${tag}`, SystemAccounts.grants, SystemAccounts.revenue, "now()")));
  }

  it("an organization with its credits account cannot be renamed", async ({ db, orgId }) => {
    const result = await outcome(
      () => db.appSql`update organizations set id = ${`${orgId}_moved`} where id = ${orgId}`,
    );
    expect(result).toMatchObject({ code: "23503" });
  });

  // The rows naming the organization were checked when written; the foreign keys also kept the
  // organization's id from changing under them afterwards. An organization without a ledger
  // account (nothing else holds its id) can be given another id by plain SQL: the rows naming it
  // then name nothing.
  const renames = {
    update: (org: string) => `update organizations set id = ${lit(`${org}_moved`)} where id = ${lit(org)}`,
    "insert … on conflict do update": (org: string) =>
      `insert into organizations (id, name) values (${lit(org)}, 'x') on conflict (id) do update set id = ${lit(`${org}_moved`)}`,
  };

  it("renaming an organization in the transaction that wrote rows naming it is refused", async ({ db }) => {
    const found: string[] = [];
    for (const [how, rename] of Object.entries(renames)) {
      const tag = newTag();
      const org = `org_rn_${tag}`;
      await outcome(() =>
        db.appSql.begin(async (tx) => {
          await tx.unsafe(`insert into organizations (id, name) values (${lit(org)}, 'Renamed')`);
          await named(tx, org, tag);
          await tx.unsafe(rename(org));
          // Its credits account under the new id, as if it had always been so.
          await tx.unsafe(`insert into ledger_accounts (id, org_id, kind)
            values (${lit(orgCreditsAccount(`${org}_moved`))}, ${lit(`${org}_moved`)}, 'org_credits')`);
        }),
      );
      found.push(...(await orphans(db, tag)).map((o) => `${how}: ${o}`));
    }
    expect(found).toEqual([]);
  });

  it("renaming an organization in a later transaction is refused", async ({ db }) => {
    const found: string[] = [];
    for (const [how, rename] of Object.entries(renames)) {
      const tag = newTag();
      const org = `org_rl_${tag}`;
      await db.appSql.unsafe(`insert into organizations (id, name) values (${lit(org)}, 'Renamed later')`);
      await db.appSql.begin((tx) => named(tx, org, tag));
      await outcome(() => db.appSql.unsafe(rename(org)));
      found.push(...(await orphans(db, tag)).map((o) => `${how}: ${o}`));
    }
    expect(found).toEqual([]);
  });

  it("renaming an organization while another transaction writes a usage event naming it is refused", async ({ db }) => {
    // A foreign key's check locked the organization's row (FOR KEY SHARE): the rename waited for
    // the writer's commit, then failed. The statement trigger's probe locks nothing, so the rename
    // must be refused by itself while the writer's transaction is open (or time out waiting).
    const tag = newTag();
    const org = `org_rc_${tag}`;
    await db.appSql.unsafe(`insert into organizations (id, name) values (${lit(org)}, 'Renamed concurrently')`);
    let wrote!: () => void;
    const eventWritten = new Promise<void>((resolve) => {
      wrote = resolve;
    });
    let finish!: () => void;
    const finished = new Promise<void>((resolve) => {
      finish = resolve;
    });
    const writer = outcome(() =>
      db.appSql.begin(async (tx) => {
        await tx.unsafe(insertEvents([eventRow(`ue_rc_${tag}`, org)]));
        wrote();
        await finished;
      }),
    );
    await eventWritten;
    const renamer = outcome(() =>
      db.appSql.begin(async (tx) => {
        await tx`set local lock_timeout = '5s'`;
        await tx.unsafe(renames.update(org));
      }),
    );
    const renamed = await renamer;
    finish();
    const outcomes = { writer: await writer, renamer: renamed };
    expect({ ...outcomes, orphans: await orphans(db, tag) }).toMatchObject({
      writer: "committed",
      renamer: { code: "23503" },
      orphans: [],
    });
  });
});

describe("partitions_ensure, called by the app's role with its own session settings", () => {
  /** Runs `body` in a transaction of the app's role that is rolled back; returns what it returned. */
  async function rolledBack<T>(db: TestDatabase, body: (tx: TransactionSql) => Promise<T>): Promise<T> {
    let result: T | undefined;
    const undo = new Error("roll back");
    await db.appSql
      .begin(async (tx) => {
        result = await body(tx);
        throw undo;
      })
      .catch((err) => {
        if (err !== undo) throw err;
      });
    return result as T;
  }

  it("makes months on UTC month bounds whatever the session's DateStyle and TimeZone, and the check follows", async ({
    db,
    orgId,
  }) => {
    const { bounds, gap } = await rolledBack(db, async (tx) => {
      await tx`set local datestyle = 'SQL, MDY'`;
      await tx`set local timezone = 'Asia/Kolkata'`;
      const made = await tx<{ month: string }[]>`
        select to_char(month, 'YYYY-MM-DD') as month from partitions_ensure(24)
        where table_name = 'ledger_entries' and outcome = 'created' order by month desc limit 1`;
      await tx`set local datestyle = 'ISO, YMD'`;
      await tx`set local timezone = 'UTC'`;
      // A transaction dated an hour into the newest month made: refused without entries,
      // committed with them (the check fired here, in the transaction rolled back after).
      const at = ts(`${made[0]!.month}T01:00:00Z`);
      const gap = {
        without: await outcome(() =>
          tx.savepoint(async (sp) => {
            await sp.unsafe(insertTxns([txnRow(`txn_tz_without_${newTag()}`, orgId, at)]));
            await sp`set constraints all immediate`;
          }),
        ),
        with: await outcome(() =>
          tx.savepoint(async (sp) => {
            const id = `txn_tz_with_${newTag()}`;
            await sp.unsafe(insertTxns([txnRow(id, orgId, at)]));
            await sp.unsafe(insertEntries(entryRows(id, SystemAccounts.grants, orgCreditsAccount(orgId), at)));
            await sp`set constraints all immediate`;
          }),
        ),
      };
      const bounds = await tx<{ partition: string; bounds: string }[]>`
        select partition, bounds from partitions where bounds like 'FOR VALUES FROM (''%' order by partition`;
      return { bounds, gap };
    });
    expect(gap.without).toMatchObject(noEntries);
    expect(gap.with).toBe("committed");
    const offMonth = bounds.filter(
      (b) => !/^FOR VALUES FROM \('\d{4}-\d{2}-01 00:00:00\+00'\) TO \('\d{4}-\d{2}-01 00:00:00\+00'\)$/.test(b.bounds),
    );
    expect(offMonth).toEqual([]);
  });

  it("does not skip a month because the session has a temporary table of that month's partition name", async ({
    db,
    orgId,
  }) => {
    const month = monthStart(20);
    const { reported, check } = await rolledBack(db, async (tx) => {
      await tx.unsafe(`create temp table ${partitionName(month)} (x int) on commit drop`);
      const made = await tx<{ month: string }[]>`
        select to_char(month, 'YYYY-MM') as month from partitions_ensure(24) where table_name = 'ledger_entries'`;
      const check = await outcome(() =>
        tx.savepoint(async (sp) => {
          await sp.unsafe(insertTxns([txnRow(`txn_tmp_${newTag()}`, orgId, ts(iso(month)))]));
          await sp`set constraints all immediate`;
        }),
      );
      return { reported: made.map((r) => r.month), check };
    });
    expect(check).toMatchObject(noEntries);
    expect(reported).toContain(iso(month).slice(0, 7));
  });
});
