import type { Context } from "hono";
import type { MaybeChainContext } from "../billing/deposits/context.js";
import { billingContext, type AppEnv } from "./context.js";

/**
 * Runs a read-mostly route's verbs for `orgId` on the read replica when the routing allows it
 * (it has replayed the org's last write; README, "Read replica"), else on the primary. Without a
 * replica configured, on the primary. `read` must only read: a replica refuses writes.
 */
export function readMostly<T>(
  c: Context<AppEnv>,
  orgId: string,
  read: (ctx: MaybeChainContext) => Promise<T>,
): Promise<T> {
  const deps = c.get("deps");
  const ctx = billingContext(deps);
  if (!deps.reads) return read(ctx);
  return deps.reads.read(orgId, (sql) => read(sql === deps.sql ? ctx : { ...ctx, sql }));
}
