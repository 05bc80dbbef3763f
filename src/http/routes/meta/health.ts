import type { Context } from "hono";
import type { AppEnv } from "../../context.js";

const POSTGRES_PROBE_TIMEOUT_MS = 2_000;

export type DependencyReport = { ok: boolean; postgres: "up" | "down"; redis?: "up" | "down"; draining?: boolean };

/**
 * PostgreSQL's answer is reused for this long, and probes arriving while one is asked share it:
 * probes are never rate limited, so without this a flood of them would be a flood of queries
 * competing with metering for the pool.
 */
const POSTGRES_PROBE_REUSE_MS = 1_000;
const lastProbe = new WeakMap<object, { at: number; state: Promise<"up" | "down"> }>();

function probePostgres(sql: AppEnv["Variables"]["deps"]["sql"]): Promise<"up" | "down"> {
  const now = performance.now();
  const last = lastProbe.get(sql);
  if (last && now - last.at < POSTGRES_PROBE_REUSE_MS) return last.state;
  let timer: NodeJS.Timeout | undefined;
  const state = Promise.race([
    sql`select 1`.then(() => "up" as const),
    new Promise<"down">((resolve) => {
      timer = setTimeout(() => resolve("down"), POSTGRES_PROBE_TIMEOUT_MS);
    }),
  ])
    .catch(() => "down" as const)
    .finally(() => clearTimeout(timer));
  lastProbe.set(sql, { at: now, state });
  return state;
}

/** Each dependency's state, shared by GET /healthz and GET /readyz. */
export async function dependencyReport(c: Context<AppEnv>): Promise<DependencyReport> {
  const { sql, health } = c.get("deps");
  const postgres = await probePostgres(sql);
  const redis = health?.redisUp ? (health.redisUp() ? "up" : "down") : undefined;
  const draining = health?.draining?.() ?? false;
  return {
    ok: postgres === "up" && redis !== "down",
    postgres,
    ...(redis ? { redis } : {}),
    ...(draining ? { draining } : {}),
  };
}
