import postgres from "postgres";
import { Redis } from "ioredis";

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
  const problems: string[] = [];
  const sql = postgres(TEST_PG_URL, { max: 1, connect_timeout: 3, onnotice: () => {} });
  try {
    await sql`select 1`;
  } catch (err) {
    problems.push(
      `PostgreSQL is not reachable at ${TEST_PG_URL} (${(err as Error).message}).\n` +
        `    Start it: pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start  (or set TEST_DATABASE_URL)`,
    );
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {});
  }
  const redis = new Redis(TEST_REDIS_URL, { lazyConnect: true, connectTimeout: 3000, maxRetriesPerRequest: 0, retryStrategy: () => null });
  redis.on("error", () => {});
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    problems.push(
      `Redis is not reachable at ${TEST_REDIS_URL} (${(err as Error).message}).\n` +
        `    Start it: redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no  (or set TEST_REDIS_URL)`,
    );
  } finally {
    redis.disconnect();
  }
  if (problems.length > 0) throw new Error(`Test services are down:\n  ${problems.join("\n  ")}`);
}
