import { checkServices } from "../../src/ops/preflight.js";

/** Where the tests find PostgreSQL (any database on the server; per-file databases are created beside it) and Redis. */
export const TEST_PG_URL = process.env.TEST_DATABASE_URL ?? "postgres://postgres@127.0.0.1:5432/postgres";
export const TEST_REDIS_URL = process.env.TEST_REDIS_URL ?? "redis://127.0.0.1:6379";

export function databaseUrl(name: string): string {
  const url = new URL(TEST_PG_URL);
  url.pathname = `/${name}`;
  return url.toString();
}

/** Fails at once, naming the URL and the command that starts the service, instead of letting every test time out. */
export async function assertServicesReachable(): Promise<void> {
  const problems = await checkServices({ postgres: TEST_PG_URL, redis: TEST_REDIS_URL });
  if (problems.length > 0) {
    throw new Error(
      `Test services are down (set TEST_DATABASE_URL / TEST_REDIS_URL to use others):\n  ${problems.join("\n  ")}`,
    );
  }
}
