import type { Context, MiddlewareHandler } from "hono";
import type { AppEnv } from "../context.js";
import { PROCESSOR_WEBHOOK_PATH } from "../routes/webhooks/receive-processor-event.js";

const READ_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);
const ADMIN_ORG_PATH = /^\/v1\/admin\/orgs\/([^/]+)/;

/**
 * With a read replica: after every write request, records the primary's WAL position for the org
 * it wrote for, so that org's reads wait for the replica to replay it (db/read-routing.ts). Runs
 * after the handler (its transaction has committed) and before the answer leaves, so a client
 * that reads after the answer is covered. Whatever the status: an error may come after a commit.
 */
export const recordWrites: MiddlewareHandler<AppEnv> = async (c, next) => {
  try {
    await next();
  } finally {
    const { reads } = c.get("deps");
    if (reads && !READ_METHODS.has(c.req.method)) {
      const scope = writeScope(c);
      if (scope !== undefined) await reads.noteWrite(scope);
    }
  }
};

/**
 * The org a write was for: an org key's own org; an operator's `/v1/admin/orgs/{id}/…`; null (every
 * org) for an operator's write that names no single org and for a delivery of the card
 * processor's webhook that was accepted; undefined (nothing recorded) for the gateway's metering,
 * which is not a read-after-write of its own (the org's lists may lag it by the replica's lag),
 * and for requests without a valid key, which wrote nothing.
 */
function writeScope(c: Context<AppEnv>): string | null | undefined {
  const principal = c.get("principal") as AppEnv["Variables"]["principal"] | undefined;
  if (!principal) return c.req.path === PROCESSOR_WEBHOOK_PATH && c.res.status < 400 ? null : undefined;
  if (principal.scope === "gateway") return undefined;
  if (principal.scope === "org") return principal.orgId;
  const match = ADMIN_ORG_PATH.exec(c.req.path);
  if (!match?.[1]) return null;
  try {
    return decodeURIComponent(match[1]);
  } catch {
    return null;
  }
}
