import { randomBytes } from "node:crypto";
import postgres from "postgres";
import { inject } from "vitest";
import { createSql, type Sql } from "../../src/db/client.js";
import { APP_LOGIN, INDEXER_ROLE, withUser } from "../../src/db/roles.js";
import { databaseUrl, TEST_PG_URL } from "./services.js";

/**
 * `url` and `sql` as the owner (fixtures may do what the app may not); `appUrl` and `appSql` as
 * the API's and workers' role (hanzo_app_user), for the app and the processes under test.
 */
export type TestDatabase = { name: string; url: string; sql: Sql; appUrl: string; appSql: Sql; drop(): Promise<void> };

/** A fresh, fully migrated database for one test file, cloned from the run's template. */
export async function createTestDatabase(opts: { max?: number } = {}): Promise<TestDatabase> {
  const template = inject("templateDatabase");
  const name = `hanzo_t_${inject("runId")}_${randomBytes(4).toString("hex")}`;
  const admin = postgres(TEST_PG_URL, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`create database "${name}" template "${template}"`);
    // A clone does not inherit its template's database grants (migration 0021).
    await admin.unsafe(`grant create on database "${name}" to ${INDEXER_ROLE}`);
  } finally {
    await admin.end();
  }
  const url = databaseUrl(name);
  const sql = createSql(url, { max: opts.max ?? 5 });
  const appUrl = withUser(url, APP_LOGIN);
  const appSql = createSql(appUrl, { max: opts.max ?? 5 });
  return {
    name,
    url,
    sql,
    appUrl,
    appSql,
    async drop() {
      await Promise.all([sql.end({ timeout: 5 }), appSql.end({ timeout: 5 })]);
      const a = postgres(TEST_PG_URL, { max: 1, onnotice: () => {} });
      try {
        await a.unsafe(`drop database if exists "${name}" with (force)`);
      } finally {
        await a.end();
      }
    },
  };
}
