import type { Context } from "hono";
import type { AppEnv } from "../../context.js";

/** What bin/api.ts knows about its dependencies beyond PostgreSQL (which is asked on each probe). */
export type HealthProbes = {
  /** Redis as the process last saw it (RedisHealth): reconnection happens in the background. */
  redisUp?: () => boolean;
  /** True once shutdown has begun: load balancers should stop sending before the server closes. */
  draining?: () => boolean;
};

const POSTGRES_PROBE_TIMEOUT_MS = 2_000;

export type DependencyReport = { ok: boolean; postgres: "up" | "down"; redis?: "up" | "down"; draining?: boolean };

/** Each dependency's state, shared by GET /healthz and GET /readyz. */
export async function dependencyReport(c: Context<AppEnv>): Promise<DependencyReport> {
  const { sql, health } = c.get("deps");
  let timer: NodeJS.Timeout | undefined;
  const postgres = await Promise.race([
    sql`select 1`.then(() => "up" as const),
    new Promise<"down">((resolve) => {
      timer = setTimeout(() => resolve("down"), POSTGRES_PROBE_TIMEOUT_MS);
    }),
  ])
    .catch(() => "down" as const)
    .finally(() => clearTimeout(timer));
  const redis = health?.redisUp ? (health.redisUp() ? "up" : "down") : undefined;
  const draining = health?.draining?.() ?? false;
  return {
    ok: postgres === "up" && redis !== "down",
    postgres,
    ...(redis ? { redis } : {}),
    ...(draining ? { draining } : {}),
  };
}
