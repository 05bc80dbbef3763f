import { randomBytes } from "node:crypto";
import postgres from "postgres";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { inject } from "vitest";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { freePort } from "../support/free-port.js";
import { startBin } from "../support/process.js";
import { uniqueRedisPrefix } from "../support/redis.js";
import { databaseUrl, TEST_PG_URL } from "../support/services.js";

/**
 * What a newcomer sees when a dependency is missing: each process exits 1 with one line that names
 * the variable and says what to do, never a stack trace.
 */
describe("a process that cannot start says why in one line", () => {
  let migrated: TestDatabase;
  let empty: string;
  let deadPort: number;
  beforeAll(async () => {
    migrated = await createTestDatabase();
    // Named like the run's other databases, so the global teardown drops it even if this file crashes.
    empty = `hanzo_empty_${inject("runId")}_${randomBytes(3).toString("hex")}`;
    const admin = postgres(TEST_PG_URL, { max: 1, onnotice: () => {} });
    await admin.unsafe(`create database "${empty}"`);
    await admin.end();
    deadPort = await freePort(); // nothing listens here
  });
  afterAll(async () => {
    await migrated?.drop();
    const admin = postgres(TEST_PG_URL, { max: 1, onnotice: () => {} });
    await admin.unsafe(`drop database if exists "${empty}" with (force)`);
    await admin.end();
  });

  type Case = {
    what: string;
    env: () => Record<string, string>;
    says: RegExp;
  };
  const cases: Case[] = [
    {
      what: "PostgreSQL is down",
      env: () => ({ DATABASE_URL: `postgres://postgres@127.0.0.1:${deadPort}/hanzo_billing` }),
      says: /DATABASE_URL: PostgreSQL does not answer at .*:\d+.*ECONNREFUSED.*start it \(pg_ctlcluster/,
    },
    {
      what: "the database does not exist",
      env: () => ({ DATABASE_URL: databaseUrl(`hanzo_missing_${randomBytes(3).toString("hex")}`) }),
      says: /DATABASE_URL: database "hanzo_missing_\w+" does not exist .*npm run db:migrate/,
    },
    {
      what: "the database is not migrated",
      env: () => ({ DATABASE_URL: databaseUrl(empty) }),
      says: /DATABASE_URL: database "hanzo_empty_\w+" .* is not migrated .*run npm run db:migrate/,
    },
    {
      what: "Redis is down",
      env: () => ({ DATABASE_URL: migrated.url, REDIS_URL: `redis://127.0.0.1:${deadPort}` }),
      says: new RegExp(
        `REDIS_URL: Redis does not answer at redis://127.0.0.1:${"\\d+"}/? \\(connect ECONNREFUSED.*--port \\d+`,
      ),
    },
    {
      what: "a variable is malformed",
      env: () => ({ DATABASE_URL: "nope", PORT: "-1" }),
      says: /invalid environment: DATABASE_URL: .*; PORT: /,
    },
    {
      what: "the login does not exist",
      env: () => ({ DATABASE_URL: migrated.appUrl.replace("hanzo_app_user@", "hanzo_nobody@") }),
      says: /DATABASE_URL: PostgreSQL at .* has no such login .*npm run db:migrate creates hanzo_app_user/,
    },
  ];

  async function refuses(script: string, env: Record<string, string>) {
    const proc = startBin(script, { REDIS_PREFIX: uniqueRedisPrefix("startup"), LOG_LEVEL: "info", ...env });
    const code = await proc.exited; // the process ends by itself: no timer decides
    const lines = proc.output().trim().split("\n");
    return { code, lines };
  }

  describe.each(["api.ts", "worker.ts"])("npm run %s", (script) => {
    it.each(cases)("$what: exit 1 and one line naming the variable and the fix", async ({ env, says }) => {
      const { code, lines } = await refuses(script, env());
      expect(code).toBe(1);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(new RegExp(`^${script.replace(".ts", "")} cannot start: `));
      expect(lines[0]).toMatch(says);
    });
  });

  describe("npm run indexer", () => {
    const indexerCases: Case[] = [
      cases[0] as Case,
      cases[1] as Case,
      cases[4] as Case,
      {
        what: "the chain's RPC does not answer",
        env: () => ({ DATABASE_URL: migrated.url, RPC_URL: `http://127.0.0.1:${deadPort}/v2/secret-key` }),
        says: /RPC_URL: no JSON-RPC answer at http:\/\/127\.0\.0\.1:\d+\/\[redacted\] .*set RPC_URL/,
      },
    ];
    it.each(indexerCases)("$what: exit 1 and one line naming the variable and the fix", async ({ env, says }) => {
      const { code, lines } = await refuses("indexer.ts", env());
      expect(code).toBe(1);
      expect(lines).toHaveLength(1);
      expect(lines[0]).toMatch(/^indexer cannot start: /);
      expect(lines[0]).toMatch(says);
      expect(lines[0]).not.toContain("secret-key");
    });
  });
});
