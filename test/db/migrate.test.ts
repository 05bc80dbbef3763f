import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { describe, expect } from "vitest";
import { migrate, readFunctions, readMigrations } from "../../src/db/migrate.js";
import { dbTest as it } from "../support/fixtures.js";

describe("migrations", () => {
  it("the template has every migration applied, with its checksum", async ({ db }) => {
    const files = await readMigrations();
    const rows = await db.sql<
      { version: string; checksum: string }[]
    >`select version, checksum from billing.schema_migrations order by version`;
    expect(rows.map((r) => r.version)).toEqual(files.map((f) => f.version));
    expect(rows.map((r) => r.checksum)).toEqual(files.map((f) => f.checksum));
  });

  it("keeps our tables in the billing schema, apart from Ponder's", async ({ db }) => {
    const rows = await db.sql<{ table_schema: string }[]>`
      select distinct table_schema from information_schema.tables where table_name = 'schema_migrations'`;
    expect(rows.map((r) => r.table_schema)).toEqual(["billing"]);
  });

  it("running again applies nothing", async ({ db }) => {
    expect(await migrate(db.sql)).toEqual([]);
  });

  it("applies new files in order and refuses an edited applied one", async ({ db }) => {
    const dir = await mkdtemp(join(tmpdir(), "migrations-"));
    for (const m of await readMigrations()) await writeFile(join(dir, `${m.version}.sql`), m.sql);
    await writeFile(join(dir, "9001_extra_a.sql"), "create table extra_a (id int primary key);");
    await writeFile(join(dir, "9002_extra_b.sql"), "create table extra_b (a int references extra_a(id));");
    expect(await migrate(db.sql, { dir })).toEqual(["9001_extra_a", "9002_extra_b"]);

    await writeFile(join(dir, "9001_extra_a.sql"), "create table extra_a (id bigint primary key);");
    await expect(migrate(db.sql, { dir })).rejects.toThrow(/9001_extra_a was edited after it was applied/);
  });

  it("a failing migration applies nothing of the batch", async ({ db }) => {
    const dir = await mkdtemp(join(tmpdir(), "migrations-"));
    for (const m of await readMigrations()) await writeFile(join(dir, `${m.version}.sql`), m.sql);
    await writeFile(join(dir, "9101_good.sql"), "create table good_one (id int);");
    await writeFile(join(dir, "9102_bad.sql"), "create table broken (id no_such_type);");
    await expect(migrate(db.sql, { dir })).rejects.toThrow(/no_such_type/);
    const [row] = await db.sql`select to_regclass('billing.good_one') as t`;
    expect(row!.t).toBeNull();
  });

  it("concurrent migrators apply each migration exactly once", async ({ db }) => {
    const dir = await mkdtemp(join(tmpdir(), "migrations-"));
    for (const m of await readMigrations()) await writeFile(join(dir, `${m.version}.sql`), m.sql);
    await writeFile(join(dir, "9201_race.sql"), "create table race (id int);");
    const results = await Promise.all([migrate(db.sql, { dir }), migrate(db.sql, { dir }), migrate(db.sql, { dir })]);
    expect(results.flat()).toEqual(["9201_race"]);
  });

  it("the template has every repeatable file applied, with its checksum", async ({ db }) => {
    const files = await readFunctions();
    const rows = await db.sql<
      { name: string; checksum: string }[]
    >`select name, checksum from billing.schema_functions order by name`;
    expect(rows).toEqual(files.map((f) => ({ name: f.version, checksum: f.checksum })));
  });

  it("re-applies a repeatable file when, and only when, its text changes", async ({ db }) => {
    const functionsDir = await mkdtemp(join(tmpdir(), "functions-"));
    for (const f of await readFunctions()) await writeFile(join(functionsDir, `${f.version}.sql`), f.sql);
    const answer = (n: number) =>
      `create or replace function zz_answer() returns int language sql as $$ select ${n} $$;`;
    await writeFile(join(functionsDir, "zz_answer.sql"), answer(1));
    expect(await migrate(db.sql, { functionsDir })).toEqual(["functions/zz_answer"]);
    expect(await migrate(db.sql, { functionsDir })).toEqual([]);
    await writeFile(join(functionsDir, "zz_answer.sql"), answer(2));
    const results = await Promise.all([migrate(db.sql, { functionsDir }), migrate(db.sql, { functionsDir })]);
    expect(results.flat()).toEqual(["functions/zz_answer"]);
    const [row] = await db.sql<{ n: number }[]>`select billing.zz_answer() as n`;
    expect(row!.n).toBe(2);
  });
});
