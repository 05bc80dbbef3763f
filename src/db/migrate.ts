import { createHash } from "node:crypto";
import { readdir, readFile } from "node:fs/promises";
import { fileURLToPath } from "node:url";
import type { Sql } from "./client.js";
import { APP_SCHEMA } from "./client.js";

export const MIGRATIONS_DIR = fileURLToPath(new URL("./migrations/", import.meta.url));

// Any constant works; it only has to be the same in every process that migrates.
const MIGRATION_LOCK_ID = 0x68616e7a6f; // "hanzo"

export type Migration = { version: string; sql: string; checksum: string };

export class MigrationError extends Error {
  override name = "MigrationError";
}

export async function readMigrations(dir = MIGRATIONS_DIR): Promise<Migration[]> {
  const files = (await readdir(dir)).filter((f) => /^\d{4}_[a-z0-9_]+\.sql$/.test(f)).sort();
  return Promise.all(
    files.map(async (file) => {
      const sql = await readFile(`${dir}/${file}`, "utf8");
      return { version: file.replace(/\.sql$/, ""), sql, checksum: createHash("sha256").update(sql).digest("hex") };
    }),
  );
}

/**
 * Applies pending migrations in order, each in its own transaction, under a session advisory
 * lock so that two processes starting together never apply one twice. Forward-only: an applied
 * migration whose file changed is refused rather than silently diverging.
 */
export async function migrate(sql: Sql, opts: { dir?: string; log?: (msg: string) => void } = {}): Promise<string[]> {
  const migrations = await readMigrations(opts.dir);
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
        if (known > m.version) throw new MigrationError(`migration ${m.version} is older than applied ${known}; migrations are forward-only`);
      }
      await tx.unsafe(`set local search_path to ${APP_SCHEMA}, public`);
      await tx.unsafe(m.sql);
      await tx`insert into ${tx(APP_SCHEMA)}.schema_migrations (version, checksum) values (${m.version}, ${m.checksum})`;
      applied.push(m.version);
      opts.log?.(`applied ${m.version}`);
    }
  });
  return applied;
}
