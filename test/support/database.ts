import { randomBytes } from "node:crypto";
import postgres from "postgres";
import { inject } from "vitest";
import { createSql, type Sql } from "../../src/db/client.js";
import { databaseUrl, TEST_PG_URL } from "./services.js";

export type TestDatabase = { name: string; url: string; sql: Sql; drop(): Promise<void> };

/** A fresh, fully migrated database for one test file, cloned from the run's template. */
export async function createTestDatabase(opts: { max?: number } = {}): Promise<TestDatabase> {
  const template = inject("templateDatabase");
  const name = `hanzo_t_${inject("runId")}_${randomBytes(4).toString("hex")}`;
  const admin = postgres(TEST_PG_URL, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database "${name}" template "${template}"`);
  } finally {
    await admin.end();
  }
  const url = databaseUrl(name);
  const sql = createSql(url, { max: opts.max ?? 5 });
  return {
    name,
    url,
    sql,
    async drop() {
      await sql.end({ timeout: 5 });
      const a = postgres(TEST_PG_URL, { max: 1, onnotice: () => {} });
      try {
        await a.unsafe(`drop database if exists "${name}" with (force)`);
      } finally {
        await a.end();
      }
    },
  };
}
