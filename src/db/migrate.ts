import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import type { Sql } from "./client.js";
import { APP_SCHEMA } from "./client.js";

export const MIGRATIONS_DIR = fileURLToPath(new URL("./migrations/", import.meta.url));
/** Functions, triggers and views: whole definitions, re-applied whenever their text changes. */
export const FUNCTIONS_DIR = fileURLToPath(new URL("./functions/", import.meta.url));

// Any constant works; it only has to be the same in every process that migrates.
const MIGRATION_LOCK_ID = 0x68616e7a6f; // "hanzo"

export type Migration = { version: string; sql: string; checksum: string };

export class MigrationError extends Error {
  override name = "MigrationError";
}

export async function readMigrations(dir = MIGRATIONS_DIR): Promise<Migration[]> {
  return readSqlFiles(dir, /^\d{4}_[a-z0-9_]+\.sql$/);
}

/** The repeatable files, in name order (a file may use what an earlier-named one defines). */
export async function readFunctions(dir = FUNCTIONS_DIR): Promise<Migration[]> {
  return readSqlFiles(dir, /^[a-z0-9_]+\.sql$/);
}

async function readSqlFiles(dir: string, name: RegExp): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => name.test(f)).sort();
  return Promise.all(
    files.map(async (file) => {
      const sql = await readFile(`${dir}/${file}`, "utf8");
      return { version: file.replace(/\.sql$/, ""), sql, checksum: createHash("sha256").update(sql).digest("hex") };
    }),
  );
}

/**
 * Applies pending migrations in order, then the repeatable files (functions, triggers, views)
 * whose text changed since they were last applied, all in one transaction under an advisory
 * lock so that two processes starting together never apply one twice. Versioned migrations are
 * forward-only: an applied one whose file changed is refused rather than silently diverging.
 * Repeatable files hold whole definitions (`create or replace`, `drop trigger if exists`), so a
 * change to a function is a diff of that function. They run after every versioned migration; a
 * file that changes a function's signature or name drops the old one itself (`drop function if
 * exists`) before creating the new.
 * Returns what it applied: migration versions, and `functions/<name>` for repeatable files.
 */
export async function migrate(
  sql: Sql,
  opts: { dir?: string; functionsDir?: string; log?: (msg: string) => void } = {},
): Promise<string[]> {
  const migrations = await readMigrations(opts.dir);
  const functions = await readFunctions(opts.functionsDir);
  const applied: string[] = [];
  await sql.begin(async (tx) => {
    // A transaction-scoped lock is released on commit or on a crash, never leaked.
    await tx`select pg_advisory_xact_lock(${MIGRATION_LOCK_ID})`;
    await tx.unsafe(`create schema if not exists ${APP_SCHEMA}`);
    await tx.unsafe(`create table if not exists ${APP_SCHEMA}.schema_migrations (
      version text primary key,
      checksum text not null,
      applied_at timestamptz not null default now()
    )`);
    const rows = await tx<{ version: string; checksum: string }[]>`
      select version, checksum from ${tx(APP_SCHEMA)}.schema_migrations`;
    const done = new Map(rows.map((r) => [r.version, r.checksum]));
    for (const m of migrations) {
      const checksum = done.get(m.version);
      if (checksum !== undefined) {
        if (checksum !== m.checksum) {
          throw new MigrationError(
            `migration ${m.version} was edited after it was applied (checksum ${checksum.slice(0, 12)} → ${m.checksum.slice(0, 12)}); write a new migration instead`,
          );
        }
        continue;
      }
      for (const known of done.keys()) {
        if (known > m.version)
          throw new MigrationError(
            `migration ${m.version} is older than applied ${known}; migrations are forward-only`,
          );
      }
      await tx.unsafe(`set local search_path to ${APP_SCHEMA}, public`);
      await tx.unsafe(m.sql);
      await tx`insert into ${tx(APP_SCHEMA)}.schema_migrations (version, checksum) values (${m.version}, ${m.checksum})`;
      applied.push(m.version);
      opts.log?.(`applied ${m.version}`);
    }

    await tx.unsafe(`create table if not exists ${APP_SCHEMA}.schema_functions (
      name text primary key,
      checksum text not null,
      applied_at timestamptz not null default now()
    )`);
    const current = new Map(
      (
        await tx<{ name: string; checksum: string }[]>`select name, checksum from ${tx(APP_SCHEMA)}.schema_functions`
      ).map((r) => [r.name, r.checksum]),
    );
    for (const f of functions) {
      if (current.get(f.version) === f.checksum) continue;
      await tx.unsafe(`set local search_path to ${APP_SCHEMA}, public`);
      await tx.unsafe(f.sql);
      await tx`
        insert into ${tx(APP_SCHEMA)}.schema_functions (name, checksum) values (${f.version}, ${f.checksum})
        on conflict (name) do update set checksum = excluded.checksum, applied_at = now()`;
      applied.push(`functions/${f.version}`);
      opts.log?.(`applied functions/${f.version}`);
    }
  });
  return applied;
}
