import { Redis } from "ioredis";
import postgres from "postgres";
import { ConfigError, type Config, loadConfig } from "../config.js";
import { APP_SCHEMA } from "../db/client.js";
import { readMigrations } from "../db/migrate.js";

export const START_POSTGRES = "pg_ctlcluster --skip-systemctl-redirect $(ls /etc/postgresql) main start";

/** The command that starts a throwaway Redis where `url` points (its host and port, not always 6379). */
export function startRedisCommand(url = "redis://127.0.0.1:6379"): string {
  let host = "127.0.0.1";
  let port = "6379";
  try {
    const u = new URL(url);
    host = u.hostname || host;
    port = u.port || port;
  } catch {
    // a malformed URL is loadConfig's to report; suggest the default
  }
  return `redis-server --daemonize yes --bind ${host} --port ${port} --save "" --appendonly no`;
}
export const START_REDIS = startRedisCommand();

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
      `PostgreSQL is not reachable at ${redactPassword(urls.postgres)} (${(err as Error).message}).\n    Start it: ${START_POSTGRES}`,
    );
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {});
  }
  const redisProblem = await pingRedis(urls.redis);
  if (redisProblem) {
    problems.push(
      `Redis is not reachable at ${redactPassword(urls.redis)} (${redisProblem}).\n    Start it: ${startRedisCommand(urls.redis)}`,
    );
  }
  return problems;
}

/**
 * What a process needs of its database URL (DATABASE_URL unless `variable` names another) before it starts: the server answers, the login works, the
 * database exists and (when `migrated`) carries every migration this release knows. Returns one
 * line naming the variable and the fix, or undefined when all is well.
 */
export async function checkDatabase(
  url: string,
  opts: { migrated: boolean; variable?: string },
): Promise<string | undefined> {
  const v = opts.variable ?? "DATABASE_URL";
  const where = redactPassword(url);
  const name = databaseName(url);
  const sql = postgres(url, { max: 1, connect_timeout: 5, onnotice: () => {} });
  try {
    await sql`select 1`;
    if (!opts.migrated) return undefined;
    const [table] = await sql<{ exists: boolean }[]>`
      select to_regclass(${`${APP_SCHEMA}.schema_migrations`}) is not null as exists`;
    if (!table?.exists) {
      return `${v}: database "${name}" at ${where} is not migrated (no ${APP_SCHEMA}.schema_migrations); run npm run db:migrate with the same ${v}`;
    }
    const pending = await pendingMigrations(sql);
    if (pending.length > 0) {
      return `${v}: database "${name}" at ${where} lacks ${pending.length} migration(s) of this release (${pending.slice(0, 3).join(", ")}${pending.length > 3 ? ", …" : ""}); run npm run db:migrate`;
    }
    return undefined;
  } catch (err) {
    const e = err as Error & { code?: string };
    if (e.code === "3D000") {
      return `${v}: database "${name}" does not exist at ${where}; create and migrate it with npm run db:migrate (it creates the database), or set ${v} to an existing one`;
    }
    if (e.code === "28000" && /role .* does not exist/.test(e.message)) {
      return `${v}: PostgreSQL at ${where} has no such login (${e.message}); npm run db:migrate creates hanzo_app_user and hanzo_indexer_user, or set ${v} to an existing login`;
    }
    if (e.code === "28P01" || e.code === "28000") {
      return `${v}: PostgreSQL at ${where} refused the login (${e.message}); fix the user or password in ${v}`;
    }
    if (e.code === "42501") return undefined; // a role that may not read the migrations table: nothing to check
    if (e.code && /^[0-9A-Z]{5}$/.test(e.code)) {
      return `${v}: PostgreSQL at ${where} answered ${e.code} (${e.message}); check ${v}`;
    }
    return `${v}: PostgreSQL does not answer at ${where} (${e.message}); start it (${START_POSTGRES}) or set ${v} to a running server`;
  } finally {
    await sql.end({ timeout: 1 }).catch(() => {});
  }
}

/** Migrations this release ships that the database has not applied (none when the files are not beside the code). */
async function pendingMigrations(sql: postgres.Sql): Promise<string[]> {
  const known = await readMigrations().catch(() => undefined);
  if (!known) return [];
  const rows = await sql<{ version: string }[]>`select version from ${sql(APP_SCHEMA)}.schema_migrations`;
  const applied = new Set(rows.map((r) => r.version));
  return known.map((m) => m.version).filter((v) => !applied.has(v));
}

/** REDIS_URL before a process starts: one line naming the variable and the fix, or undefined. */
export async function checkRedis(url: string): Promise<string | undefined> {
  const problem = await pingRedis(url);
  if (!problem) return undefined;
  return `REDIS_URL: Redis does not answer at ${redactPassword(url)} (${problem}); start it (${startRedisCommand(url)}) or set REDIS_URL to a running server`;
}

async function pingRedis(url: string): Promise<string | undefined> {
  const redis = new Redis(url, {
    lazyConnect: true,
    connectTimeout: 3000,
    maxRetriesPerRequest: 0,
    retryStrategy: () => null,
  });
  // connect() rejects with "Connection is closed."; the error event says why (ECONNREFUSED, …).
  let cause: string | undefined;
  redis.on("error", (err: Error) => {
    cause ??= err.message;
  });
  try {
    await redis.connect();
    await redis.ping();
    return undefined;
  } catch (err) {
    return cause ?? (err as Error).message;
  } finally {
    redis.disconnect();
  }
}

/**
 * The environment, or one line on stderr naming every bad variable and exit 1: a newcomer's
 * mistake deserves the variable's name, not a stack trace.
 */
export function loadConfigOrExit(processName: string): Config {
  try {
    return loadConfig();
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    exitWithProblems(processName, [`invalid environment: ${err.problems.join("; ")}`]);
  }
}

/** Runs the checks together; any problem is printed, one line each, and the process exits 1. */
export async function preflightOrExit(processName: string, checks: Promise<string | undefined>[]): Promise<void> {
  const problems = (await Promise.all(checks)).filter((p): p is string => p !== undefined);
  if (problems.length > 0) exitWithProblems(processName, problems);
}

export function exitWithProblems(processName: string, problems: string[]): never {
  for (const problem of problems) process.stderr.write(`${processName} cannot start: ${problem}\n`);
  process.exit(1);
}

function databaseName(url: string): string {
  try {
    return decodeURIComponent(new URL(url).pathname.replace(/^\//, "")) || "(none)";
  } catch {
    return "(unreadable URL)";
  }
}

/** The URL with its password masked, for messages and logs. */
export function redactPassword(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return url;
  }
}
