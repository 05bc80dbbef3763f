import { randomBytes } from "node:crypto";
import { readFile } from "node:fs/promises";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createSql, type Sql } from "../../src/db/client.js";
import { INDEXER_LOGIN, withUser } from "../../src/db/roles.js";
import { createTestApp, manualClock, TEST_ADMIN_KEY, type TestApp } from "../support/app.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import { waitFor } from "../support/process.js";

/** PostgreSQL's own refusal (42501 with its wording), not a trigger of ours that refuses anyone. */
const REFUSED = /^(permission denied|must be owner|must be superuser|must have admin option)/;

async function refusal(run: () => Promise<unknown>): Promise<{ code?: string; message: string }> {
  try {
    await run();
  } catch (err) {
    return { code: (err as { code?: string }).code, message: (err as Error).message };
  }
  return { message: "it was allowed" };
}

describe("database roles", () => {
  let db: TestDatabase;
  let indexer: Sql;
  beforeAll(async () => {
    db = await createTestDatabase();
    indexer = createSql(withUser(db.url, INDEXER_LOGIN), { max: 2 });
  });
  afterAll(async () => {
    await indexer?.end({ timeout: 5 });
    await db?.drop();
  });

  it("the API's and workers' login is hanzo_app's member and nothing more", async () => {
    const [me] = await db.appSql<{ user: string; superuser: boolean; bypass: boolean; groups: string[] }[]>`
      select current_user as user, rolsuper as superuser, rolbypassrls as bypass,
             array(select b.rolname from pg_auth_members m join pg_roles b on b.oid = m.roleid where m.member = r.oid) as groups
      from pg_roles r where rolname = current_user`;
    expect(me).toEqual({ user: "hanzo_app_user", superuser: false, bypass: false, groups: ["hanzo_app"] });
  });

  // Each of these is what a compromised API or worker would do to rewrite money; as the owner
  // (the superuser the processes connected as before) every one but the append-only triggers'
  // goes through, and those the owner can switch off (last test).
  const ledgerRow = "(select id from ledger_entries limit 1)";
  it.each([
    ["disable a ledger trigger", "alter table ledger_entries disable trigger ledger_entries_immutable"],
    ["disable every trigger of invoices", "alter table invoices disable trigger all"],
    ["switch triggers off for its session", "set session_replication_role = replica"],
    ["the same, for one transaction", "set local session_replication_role = replica"],
    ["truncate the ledger", "truncate ledger_entries, ledger_transactions cascade"],
    ["truncate a table without a truncate trigger", "truncate usage_events cascade"],
    ["update a ledger row", `update ledger_entries set amount = amount + 1 where id = ${ledgerRow}`],
    ["delete a ledger row", `delete from ledger_entries where id = ${ledgerRow}`],
    ["delete a ledger transaction", "delete from ledger_transactions"],
    ["update recorded usage", "update usage_events set cost = 0"],
    ["delete anything (holds)", "delete from holds"],
    ["rewrite the webhook delivery log", "update webhook_attempts set status_code = 200"],
    ["remove an event", "delete from billing_events"],
    ["delete a webhook endpoint's row", "delete from webhook_endpoints"],
    ["drop a table", "drop table holds cascade"],
    ["alter a table", "alter table organizations add column x int"],
    ["drop a trigger", "drop trigger ledger_entries_immutable on ledger_entries"],
    [
      "replace a function",
      "create or replace function ledger_refuse_change() returns trigger language plpgsql as $$ begin return null; end $$",
    ],
    ["drop a function", "drop function ledger_refuse_change() cascade"],
    ["create a table in billing", "create table billing.shadow (id int)"],
    [
      "create a trigger",
      "create trigger t before insert on holds for each row execute function ledger_refuse_change()",
    ],
    ["create a schema", "create schema shadow"],
    ["become the owner", "set role postgres"],
    ["load prices", "insert into catalog_versions (version, effective_at) values ('x', now())"],
    ["mark a migration applied", "insert into schema_migrations (version, checksum) values ('9999_x', 'x')"],
    ["switch triggers off with set_config", "select set_config('session_replication_role', 'replica', false)"],
    ["become the owner for the session", "set session authorization postgres"],
    ["become the indexer", "set role hanzo_indexer"],
    ["join the indexer's role", "grant hanzo_indexer to current_user"],
    ["make itself superuser", "alter role current_user superuser"],
    ["create a function in public", "create function public.f() returns int language sql as 'select 1'"],
    ["install an extension (dblink)", "create extension dblink"],
    ["run a program through COPY", "copy ledger_entries to program 'true'"],
    ["read a server file", "select pg_read_file('/etc/hostname')"],
    ["mark a trigger replica-only", "alter table ledger_accounts enable replica trigger ledger_accounts_open_at_zero"],
  ])("the app cannot %s", async (_what, statement) => {
    // Each in its own transaction, rolled back when refused.
    const err = await refusal(() => db.appSql.begin((tx) => tx.unsafe(statement)));
    expect(err.message).toMatch(REFUSED);
    expect(err.code).toBe("42501");
  });

  // Statements the app's role is granted (it inserts ledger rows, and its trigger updates the
  // cached balances), which the ledger's triggers still refuse. The temp tables: a session's
  // temporary tables come first in name lookup unless a function pins its search_path, so a
  // balanced pair in a temp `ledger_entries` made the balance check pass a lone entry.
  const attack = (orgId: string) => {
    const credits = `'org:${orgId}:credits'`;
    const txn = (id: string) =>
      `insert into ledger_transactions (id, org_id, kind, idempotency_key) values ('${id}', '${orgId}', 'grant', '${id}')`;
    return {
      "set its credits balance": [`update ledger_accounts set balance = 1000000000000 where id = ${credits}`],
      "touch its balance at all": [`update ledger_accounts set balance = balance where id = ${credits}`],
      "give back what its holds reserve": [`update ledger_accounts set held = 0 where id = ${credits}`],
      "open an account with a reservation": [
        `insert into ledger_accounts (id, org_id, kind, held) values ('org:x:credits', '${orgId}', 'org_credits', 5)`,
      ],
      "open an account with a balance": [
        `insert into ledger_accounts (id, org_id, kind, balance) values ('org:x:credits', '${orgId}', 'org_credits', 5)`,
      ],
      "post one lone entry": [
        txn("txn_lone"),
        `insert into ledger_entries (transaction_id, account_id, amount) values ('txn_lone', ${credits}, 1000000000000)`,
      ],
      "post a lone entry past a temp ledger_entries that looks balanced": [
        "create temp table ledger_entries (transaction_id text, amount bigint) on commit drop",
        "insert into pg_temp.ledger_entries values ('txn_shadow', 5), ('txn_shadow', -5)",
        txn("txn_shadow"),
        `insert into billing.ledger_entries (transaction_id, account_id, amount) values ('txn_shadow', ${credits}, 1000000000000)`,
      ],
    };
  };
  let attacked: Awaited<ReturnType<TestApp["createOrg"]>>;
  it.for(Object.keys(attack("org_x")))("the ledger's triggers refuse the app's attempt to %s", async (what) => {
    attacked ??= await createTestApp({ sql: db.appSql }).createOrg("Attacked");
    const statements = attack(attacked.id)[what as keyof ReturnType<typeof attack>];
    const err = await refusal(() =>
      db.appSql.begin(async (tx) => {
        for (const statement of statements) await tx.unsafe(statement);
        throw new Error("every statement went through");
      }),
    );
    expect(err.message).toMatch(/^ledger (account|transaction) .*(refused|unbalanced)/);
    expect(["42501", "23514"]).toContain(err.code);
  });

  it("a temp ledger_accounts does not keep a posting out of the real balance cache", async () => {
    attacked ??= await createTestApp({ sql: db.appSql }).createOrg("Attacked");
    const credits = `org:${attacked.id}:credits`;
    let balance: bigint | undefined;
    const rolledBack = await refusal(() =>
      db.appSql.begin(async (tx) => {
        await tx`create temp table ledger_accounts (id text, balance bigint, kind text) on commit drop`;
        await tx`insert into ledger_transactions (id, org_id, kind, idempotency_key) values ('txn_cache', ${attacked.id}, 'grant', 'txn_cache')`;
        await tx`insert into billing.ledger_entries (transaction_id, account_id, amount) values
        ('txn_cache', ${credits}, 7), ('txn_cache', 'system:grants', -7)`;
        const [row] = await tx<
          { balance: bigint }[]
        >`select balance::bigint as balance from billing.ledger_accounts where id = ${credits}`;
        balance = row?.balance;
        throw new Error("rolled back");
      }),
    );
    expect(rolledBack.message).toBe("rolled back");
    expect(balance).toBe(7n);
  });

  it("every trigger function in billing pins its search_path (temp tables cannot stand in for billing's)", async () => {
    const loose = await db.sql<{ name: string }[]>`
      select p.proname as name from pg_proc p join pg_namespace n on n.oid = p.pronamespace
      where n.nspname = 'billing' and p.prorettype = 'trigger'::regtype
        and not coalesce('search_path=billing, pg_temp' = any (p.proconfig), false)`;
    expect(loose).toEqual([]);
  });

  it("the owner can switch the append-only triggers off, which is why no process connects as it", async () => {
    await db.sql
      .begin(async (tx) => {
        await tx`set local session_replication_role = replica`;
        await tx`alter table ledger_entries disable trigger ledger_entries_immutable`;
        throw new Error("rolled back");
      })
      .catch((err: Error) => expect(err.message).toBe("rolled back"));
  });

  it("the indexer's login acts as hanzo_indexer: it makes schemas of its own", async () => {
    const [me] = await indexer<
      { user: string; session: string }[]
    >`select current_user as user, session_user as session`;
    expect(me).toEqual({ user: "hanzo_indexer", session: "hanzo_indexer_user" });
    await indexer`create schema husd_indexer_00000000aa`;
    const [owner] = await db.sql<{ owner: string }[]>`
      select nspowner::regrole::text as owner from pg_namespace where nspname = 'husd_indexer_00000000aa'`;
    expect(owner?.owner).toBe("hanzo_indexer");
    await indexer`drop schema husd_indexer_00000000aa`;
  });

  it.for([
    "select count(*) from billing.organizations",
    "create table billing.shadow (id int)",
    "set session_replication_role = replica",
  ])("the indexer's login is refused %s", async (statement) => {
    const err = await refusal(() => indexer.unsafe(statement));
    expect(err.message, statement).toMatch(REFUSED);
  });

  it("the app's role runs the money path: authorize, settle, usage, a closed cycle's invoice, paid", async () => {
    const clock = manualClock(new Date("2026-10-05T10:00:00Z"));
    const t = createTestApp({ sql: db.appSql, clock });
    const org = await t.createOrg("Least Privilege Co");
    await t.grant(org.id, "1");
    expect(
      (await t.call("PUT", `/v1/admin/orgs/${org.id}/subscription`, { key: TEST_ADMIN_KEY, body: { plan_id: "pro" } }))
        .status,
    ).toBe(200);
    const hold = await t.call("POST", "/v1/billing/authorize", {
      key: org.gatewayKey,
      body: { org_id: org.id, product: "llm", model: "zen-pro", estimate: { input_tokens: 1000, output_tokens: 500 } },
    });
    expect(hold.status).toBe(201);
    const event = (key: string, extra: Record<string, unknown> = {}) => ({
      idempotency_key: key,
      org_id: org.id,
      timestamp: clock().toISOString(),
      product: "llm",
      model: "zen-pro",
      quantities: { input_tokens: 1000, output_tokens: 500 },
      ...extra,
    });
    const usage = await t.call("POST", "/v1/billing/usage", {
      key: org.gatewayKey,
      body: { events: [event("settle-1", { hold_id: hold.json.hold_id }), event("plain-1")] },
    });
    expect(usage.status).toBe(200);
    expect(usage.json.results[0]).toMatchObject({ status: "recorded", hold_outcome: "released" });
    expect(usage.json.results[1]).toMatchObject({ status: "recorded" });

    clock.set(new Date("2026-11-01T00:00:05Z"));
    const closed = await t.call("POST", "/v1/admin/cycles/close", { key: TEST_ADMIN_KEY, body: { org_id: org.id } });
    expect(closed.json).toMatchObject({ invoices_created: 1 });
    const [invoice] = (await t.call("GET", "/v1/billing/invoices", { key: org.orgKey })).json.data;
    expect(invoice.status).toBe("open"); // $1 of credits leaves most of the $20 plan due
    const lines = (await t.call("GET", `/v1/billing/invoices/${invoice.id}`, { key: org.orgKey })).json.lines;
    expect(lines.map((l: { kind: string; amount_nano_usd: string }) => [l.kind, l.amount_nano_usd])).toEqual([
      ["usage", "15000000"], // two events of 7.5 m nano-USD
      ["subscription", "20000000000"],
    ]);
    const paid = await t.call("POST", `/v1/admin/invoices/${invoice.id}/pay`, { key: TEST_ADMIN_KEY });
    expect(paid.json.status).toBe("paid");

    await expectLedgerConsistent(db.sql);
  });

  it("migration 0021 hands Ponder's schemas made by the owner to hanzo_indexer, and the views to the app", async () => {
    const build = "husd_indexer_00000000bb";
    await db.sql.unsafe(`
      create schema ${build};
      create table ${build}._ponder_meta (key text primary key, value jsonb);
      create table ${build}.husd_transfer (id text primary key, n serial);
      create function ${build}.reorg() returns trigger language plpgsql as $$ begin return null; end $$;
      create schema old_views;
      create view old_views._ponder_meta as select * from ${build}._ponder_meta;
      create view old_views.husd_transfer as select * from ${build}.husd_transfer;
      insert into ${build}.husd_transfer (id) values ('t1');`);
    expect((await refusal(() => db.appSql`select id from old_views.husd_transfer`)).message).toMatch(REFUSED);

    // Every statement of the migration can run again: the roles exist, the rest is idempotent.
    await db.sql.unsafe(await readFile(new URL("../../src/db/migrations/0021_roles.sql", import.meta.url), "utf8"));
    const owners = await db.sql<{ name: string; owner: string }[]>`
      select nspname as name, nspowner::regrole::text as owner from pg_namespace where nspname in (${build}, 'old_views')
      union all
      select n.nspname || '.' || c.relname, c.relowner::regrole::text from pg_class c join pg_namespace n on n.oid = c.relnamespace
      where n.nspname in (${build}, 'old_views') and c.relkind in ('r', 'v', 'S')
      union all
      select n.nspname || '.' || p.proname, p.proowner::regrole::text from pg_proc p join pg_namespace n on n.oid = p.pronamespace
      where n.nspname = ${build}
      order by 1`;
    expect(owners.length).toBe(8); // two schemas, two tables, the serial's sequence, two views, the function
    for (const o of owners) expect(o.owner, o.name).toBe("hanzo_indexer");
    expect(await db.appSql`select id from old_views.husd_transfer`).toEqual([{ id: "t1" }]);
    expect((await refusal(() => db.appSql`select id from ${db.appSql(build)}.husd_transfer`)).message).toMatch(REFUSED);
    // The indexer may now replace the views and drop the old build, as a deploy does.
    await indexer.unsafe(`drop schema ${build} cascade; drop schema old_views cascade`);
  });

  it("two migrations making the roles at the same moment both succeed (the roles are the cluster's)", async () => {
    // The migration's own block, on fresh role names: one transaction makes them and holds its
    // commit while the other tries the same, waits on the first's uncommitted rows, then must
    // skip them when the first commits.
    const migration = await readFile(new URL("../../src/db/migrations/0021_roles.sql", import.meta.url), "utf8");
    const prefix = `hanzo_race_${randomBytes(3).toString("hex")}_`;
    const block = migration.slice(migration.indexOf("do $$"), migration.indexOf("end $$;") + "end $$;".length);
    const made = block.replaceAll("hanzo_", prefix);
    expect(made.match(/create role/g)).toHaveLength(4);
    const [first, second] = [postgres(db.url, { max: 1 }), postgres(db.url, { max: 1 })];
    let release = () => {};
    const held = new Promise<void>((resolve) => (release = resolve));
    try {
      let madeByFirst = () => {};
      const firstMade = new Promise<void>((resolve) => (madeByFirst = resolve));
      const firstDone = first.begin(async (tx) => {
        await tx.unsafe(made);
        madeByFirst();
        await held;
      });
      await firstMade;
      const [me] = await second<{ pid: number }[]>`select pg_backend_pid() as pid`;
      const pid = me?.pid ?? 0;
      const secondDone = second.unsafe(made).execute(); // postgres.js runs a query when awaited, else
      await waitFor(
        async () =>
          (await db.sql`select 1 from pg_stat_activity where pid = ${pid} and wait_event_type = 'Lock'`).length === 1,
        { what: "the second migration waiting on the first's roles" },
      );
      release();
      await firstDone;
      await secondDone;
      const roles = await db.sql<{ name: string; login: boolean; groups: string[]; config: string[] | null }[]>`
        select rolname as name, rolcanlogin as login, rolconfig as config,
               array(select b.rolname from pg_auth_members m join pg_roles b on b.oid = m.roleid where m.member = r.oid) as groups
        from pg_roles r where rolname like ${`${prefix}%`} order by rolname`;
      expect(roles).toEqual([
        { name: `${prefix}app`, login: false, groups: [], config: null },
        { name: `${prefix}app_user`, login: true, groups: [`${prefix}app`], config: null },
        { name: `${prefix}indexer`, login: false, groups: [], config: null },
        { name: `${prefix}indexer_user`, login: true, groups: [`${prefix}indexer`], config: [`role=${prefix}indexer`] },
      ]);
    } finally {
      release();
      await Promise.all([first.end({ timeout: 5 }), second.end({ timeout: 5 })]);
      for (const name of ["app_user", "indexer_user", "app", "indexer"])
        await db.sql.unsafe(`drop role if exists ${prefix}${name}`);
    }
  });
});
