import { Redis } from "ioredis";
import postgres from "postgres";
import { ConfigError, type Config, loadConfig } from "../config.js";
import { APP_SCHEMA } from "../db/client.js";
import { readMigrations } from "../db/migrate.js";
import { nodeKey, parseRedisUrl, redactCredentials, type RedisTarget } from "../redis-url.js";

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

/**
 * REDIS_URL before a process starts: one line naming the variable and the fix, or undefined. A
 * cluster is not judged here (a node down is for a failover to fix, not a reason to exit):
 * `awaitRedisCluster` waits for it after the other checks.
 */
export async function checkRedis(url: string): Promise<string | undefined> {
  if (parseRedisUrl(url).kind === "cluster") return undefined;
  const problem = await pingRedis(url);
  if (!problem) return undefined;
  return `REDIS_URL: Redis does not answer at ${redactPassword(url)} (${problem}); start it (${startRedisCommand(url)}) or set REDIS_URL to a running server`;
}

async function pingRedis(url: string): Promise<string | undefined> {
  const target = parseRedisUrl(url);
  if (target.kind === "cluster") {
    const probes = await probeClusterSeeds(target);
    return probes.some((p) => p.problem === undefined)
      ? undefined
      : probes.map((p) => `${p.node}: ${p.problem}`).join("; ");
  }
  const answer = await askOnce(new Redis(url, ONE_SHOT), (redis) => redis.ping());
  return "failure" in answer ? answer.failure : undefined;
}

/** A connection that tries once and never reconnects: for a probe that must answer now. */
const ONE_SHOT = { lazyConnect: true, connectTimeout: 3000, maxRetriesPerRequest: 0, retryStrategy: () => null };

/**
 * Connects `redis` (made with ONE_SHOT), runs `ask` and disconnects: its answer, or why it failed.
 * connect() rejects with "Connection is closed."; the error event says why (ECONNREFUSED, …).
 */
async function askOnce<T>(
  redis: Redis,
  ask: (redis: Redis) => Promise<T>,
): Promise<{ value: T } | { failure: string }> {
  let cause: string | undefined;
  redis.on("error", (err: Error) => {
    cause ??= err.message;
  });
  try {
    await redis.connect();
    return { value: await ask(redis) };
  } catch (err) {
    return { failure: cause ?? (err as Error).message };
  } finally {
    redis.disconnect();
  }
}

type SeedProbe = { node: string; problem?: string };

/** Asks every seed node of a cluster for CLUSTER INFO: which answer with cluster_state:ok, and why the others do not. */
export async function probeClusterSeeds(target: Extract<RedisTarget, { kind: "cluster" }>): Promise<SeedProbe[]> {
  return Promise.all(
    target.nodes.map(async (node): Promise<SeedProbe> => {
      const redis = new Redis({
        host: node.host,
        port: node.port,
        username: target.username,
        password: target.password,
        ...(target.tls ? { tls: {} } : {}),
        ...ONE_SHOT,
      });
      const answer = await askOnce(redis, async (r) => String(await r.call("CLUSTER", "INFO")));
      if ("failure" in answer) {
        if (/cluster support disabled/i.test(answer.failure)) {
          return {
            node: nodeKey(node),
            problem: "is a Redis without cluster mode; name it as redis://host:port instead",
          };
        }
        return { node: nodeKey(node), problem: `does not answer (${answer.failure})` };
      }
      const state = /cluster_state:(\w+)/.exec(answer.value)?.[1];
      if (state === "ok") return { node: nodeKey(node) };
      return {
        node: nodeKey(node),
        problem: `answers cluster_state:${state ?? "?"} (slots without a live master, or the cluster was never created: redis-cli --cluster create)`,
      };
    }),
  );
}

/**
 * When REDIS_URL names a cluster: waits until one of its seed nodes answers cluster_state:ok,
 * saying on stderr which seeds do not and why (again when that changes, or every 30 s), retrying
 * 1 s, 2 s … up to 10 s apart, instead of exiting (and being restarted in a loop by a supervisor,
 * telling nothing). Seeds that stay down while the cluster is usable are named once, and the
 * process starts with the others. Nothing to do for one Redis (checkRedis has judged it).
 */
export async function awaitRedisCluster(
  processName: string,
  url: string,
  opts: { write?: (line: string) => void; maxDelayMs?: number } = {},
): Promise<void> {
  const target = parseRedisUrl(url);
  if (target.kind !== "cluster") return;
  const write = opts.write ?? ((line: string) => process.stderr.write(`${line}\n`));
  let lastSaid = "";
  let saidAt = 0;
  for (let attempt = 0; ; attempt++) {
    const probes = await probeClusterSeeds(target);
    const down = probes.filter((p) => p.problem !== undefined);
    const usable = down.length < probes.length;
    const problems = down.map((p) => `seed ${p.node} ${p.problem}`).join("; ");
    if (usable) {
      if (down.length > 0) write(`${processName}: REDIS_URL: ${problems}; starting with the other seeds`);
      return;
    }
    const delay = Math.min(1000 * 2 ** attempt, opts.maxDelayMs ?? 10_000);
    if (problems !== lastSaid || Date.now() - saidAt >= 30_000) {
      write(
        `${processName} waiting for the Redis Cluster in REDIS_URL: ${problems}; retrying every ${Math.round(delay / 1000)} s or so`,
      );
      lastSaid = problems;
      saidAt = Date.now();
    }
    await new Promise((resolve) => setTimeout(resolve, delay));
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
    if (url.includes(",")) return redactCredentials(url); // a cluster's seed list is not one URL
    const u = new URL(url);
    if (u.password) u.password = "***";
    return u.toString();
  } catch {
    return redactCredentials(url);
  }
}
