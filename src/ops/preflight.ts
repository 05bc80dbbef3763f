import { Redis } from "ioredis";
import postgres from "postgres";

export const START_POSTGRES = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start";
export const START_REDIS = 'redis-server --daemonize yes --bind 127.0.0.1 --port 6379 --save "" --appendonly no';

/**
 * Checks that PostgreSQL and Redis answer, and says for each one that does not which URL failed
 * and the exact command that starts it, instead of letting every later step time out.
 */
export async function checkServices(urls: { postgres: string; redis: string }): Promise<string[]> {
  const problems: string[] = [];
  const sql = postgres(urls.postgres, { max: 1, connect_timeout: 3, onnotice: () => {} });
  try {
    await sql`select 1`;
  } catch (err) {
    problems.push(
      `PostgreSQL is not reachable at ${redact(urls.postgres)} (${(err as Error).message}).\n    Start it: ${START_POSTGRES}`,
    );
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {});
  }
  const redis = new Redis(urls.redis, {
    lazyConnect: true,
    connectTimeout: 3000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  redis.on("error", () => {});
  try {
    await redis.connect();
    await redis.ping();
  } catch (err) {
    problems.push(
      `Redis is not reachable at ${redact(urls.redis)} (${(err as Error).message}).\n    Start it: ${START_REDIS}`,
    );
  } finally {
    redis.disconnect();
  }
  return problems;
}

function redact(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return url;
  }
}
