/**
 * Vitest fixtures for the resources most test files need: a migrated database, a Redis prefix, the
 * in-process app. The chain tests' fixtures (anvil with our contracts, the deposit stack, Ponder)
 * build on these: test/support/chain-fixtures.ts.
 *
 * The expensive ones are file-scoped: set up for the first test of a file that names them, shared by
 * the file's other tests and torn down after its last one (one database, one anvil per file, as the
 * isolation rules ask). A test names what it needs: `it("…", async ({ app }) => …)`.
 *
 * Options are fixtures too; a file overrides them once, before its tests, with
 * `it.scoped({ dbOptions: { max: 10 }, appOptions: { clock } })`. File-scoped fixtures are built
 * once per file, so every describe of a file shares the options the first user saw.
 *
 * A file-scoped fixture is set up inside the timeout of the hook or test that first needs it.
 * Vitest's hooks take the context's type as a parameter: `beforeEach<AppContext>(…)`.
 *
 * `it.each` does not hand fixtures to its callback; a case table that needs them uses `it.for`,
 * whose callback receives `(case, context)`.
 */
import { test } from "vitest";
import { createTestApp, type TestApp } from "./app.js";
import { createTestDatabase, type TestDatabase } from "./database.js";
import { clearRedisPrefix, createTestRedis, uniqueRedisPrefix } from "./redis.js";

export type DatabaseOptions = Parameters<typeof createTestDatabase>[0];
export type AppOptions = Omit<Parameters<typeof createTestApp>[0], "sql">;
export type TestRedis = { connection: ReturnType<typeof createTestRedis>; prefix: string };

export type DbContext = { dbOptions: DatabaseOptions; db: TestDatabase; redisLabel: string; redis: TestRedis };
export type AppContext = DbContext & { appOptions: AppOptions; app: TestApp };

/**
 * In vitest 3.2 `x.extend(…)` adds its fixtures to x's own list as well, so two tests extended from
 * one base would see each other's fixtures (the first `app` defined would win). Each exported test
 * therefore starts from a base of its own (`withDatabase()`, also for other support modules). A
 * file that extends one of them changes it for that file only (each file loads its own copy).
 */
export function withDatabase() {
  return test.extend<DbContext>({
    dbOptions: {},
    db: [
      async ({ dbOptions }, use) => {
        const db = await createTestDatabase(dbOptions);
        try {
          await use(db);
        } finally {
          await db.drop();
        }
      },
      { scope: "file" },
    ],
    /**
     * `redis`: a connection and a key prefix no other file uses, for the files that name it; the
     * prefix's keys (BullMQ's under `{prefix}` too) are deleted after the file.
     */
    redisLabel: "t",
    redis: [
      async ({ redisLabel }, use) => {
        const connection = createTestRedis();
        const prefix = uniqueRedisPrefix(redisLabel);
        try {
          await use({ connection, prefix });
        } finally {
          await clearRedisPrefix(connection, `{${prefix}}`);
          await clearRedisPrefix(connection, prefix);
          connection.disconnect();
        }
      },
      { scope: "file" },
    ],
  });
}

/** `db`: a fresh database cloned from the run's migrated template, for this file; `redis` when named. */
export const dbTest = withDatabase();

/** `app`: the real app in process on the file's database, with `call`, `createOrg` and `grant`. */
export const appTest = withDatabase().extend<Omit<AppContext, keyof DbContext>>({
  appOptions: {},
  app: [async ({ db, appOptions }, use) => use(createTestApp({ sql: db.appSql, ...appOptions })), { scope: "file" }],
});
