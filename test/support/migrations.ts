import { mkdtemp, writeFile } from "node:fs/promises";
import { tmpdir } from "node:os";
import { join } from "node:path";
import { expect } from "vitest";
import type { Sql } from "../../src/db/client.js";
import { migrate, readMigrations } from "../../src/db/migrate.js";

/**
 * Brings a new database to the state just before migration `version`: every earlier migration
 * and none of the repeatable functions (a test of a migration on existing data seeds rows there,
 * then runs `migrate(sql)` for the rest).
 */
export async function migrateUpTo(sql: Sql, version: string): Promise<void> {
  const all = await readMigrations();
  expect(all.map((m) => m.version)).toContain(version);
  const before = await mkdtemp(join(tmpdir(), "migrations-before-"));
  for (const m of all.filter((m) => m.version < version)) await writeFile(join(before, `${m.version}.sql`), m.sql);
  await migrate(sql, { dir: before, functionsDir: await mkdtemp(join(tmpdir(), "no-functions-")) });
}
