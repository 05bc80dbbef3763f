import type { Context, MiddlewareHandler } from "hono";
import { authenticate, type KeyPermission, type KeyScope, KeyUsage, type Principal } from "../../billing/api-keys.js";
import { BillingError } from "../../errors.js";
import type { AppEnv, AuthOutcome } from "../context.js";

/** What the request's Authorization header proved, worked out once per header value. */

/**
 * Resolves `Authorization: Bearer hk-…` to its principal, or the 401 it deserves (missing,
 * malformed, unknown or revoked key), once per request: the app-wide rate limit and the route's
 * requireScope both ask. `beforeLookup` runs just before PostgreSQL is asked (the key is in
 * neither of this process's caches) and may refuse the request by throwing. Remembered with the header it was computed for, since the queue
 * dashboard turns Basic auth into Bearer between the two.
 */
export async function resolveAuth(c: Context<AppEnv>, beforeLookup?: () => Promise<void>): Promise<AuthOutcome> {
  const header = c.req.header("authorization");
  const known = c.get("auth");
  if (known && known.header === header) return known.outcome;
  let outcome: AuthOutcome;
  try {
    outcome = { principal: await authenticateHeader(c, header, beforeLookup) };
  } catch (err) {
    // A 429 from beforeLookup is the request's answer, not what the key is.
    if (!(err instanceof BillingError) || err.code === "rate_limited") throw err;
    outcome = { error: err };
  }
  c.set("auth", { header, outcome });
  return outcome;
}

async function authenticateHeader(
  c: Context<AppEnv>,
  header: string | undefined,
  beforeLookup?: () => Promise<void>,
): Promise<Principal> {
  if (!header) throw new BillingError("missing_api_key", "send your API key as Authorization: Bearer hk-…");
  const key = /^Bearer\s+(\S+)\s*$/i.exec(header)?.[1];
  if (!key) throw new BillingError("invalid_api_key", "the Authorization header must be Bearer hk-…");
  const { sql, config, keyCache } = c.get("deps");
  return authenticate(sql, key, config.ADMIN_API_KEY, keyCache, beforeLookup);
}

/**
 * `Authorization: Bearer hk-…`. 401 when the key is missing, malformed, unknown or revoked;
 * 403 when it is valid but of another scope than the route accepts.
 */
export function requireScope(...scopes: KeyScope[]): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const auth = await resolveAuth(c);
    if ("error" in auth) throw auth.error;
    const { principal } = auth;
    if (!scopes.includes(principal.scope)) {
      throw new BillingError(
        "insufficient_scope",
        `this endpoint needs a key with scope ${scopes.join(" or ")}; this key has scope ${principal.scope}`,
      );
    }
    c.set("principal", principal);
    await recordUse(c, principal);
    await next();
  };
}

const usages = new WeakMap<object, KeyUsage>();

/** last_used_at, at most one write per key per minute (KeyUsage); the bootstrap admin key has no row. */
async function recordUse(c: Context<AppEnv>, principal: Principal) {
  if (principal.keyId === "key_bootstrap_admin") return;
  const deps = c.get("deps");
  let usage = usages.get(deps);
  if (!usage) {
    usage = new KeyUsage();
    usages.set(deps, usage);
  }
  try {
    await usage.touch(deps.sql, principal.keyId, deps.clock());
  } catch (err) {
    // A missed "last used" is not worth failing the request it describes.
    deps.logger.warn({ err, keyId: principal.keyId }, "could not record the key's last use");
  }
}

/** After requireScope: 403 insufficient_scope unless the key has `permission`. */
export function requirePermission(permission: KeyPermission): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    if (!c.get("principal").permissions.includes(permission))
      throw new BillingError("insufficient_scope", `this endpoint needs a key with the ${permission} permission`);
    await next();
  };
}

/** The organization an org- or gateway-scoped principal speaks for. */
export function principalOrgId(c: { get(key: "principal"): AppEnv["Variables"]["principal"] }): string {
  const orgId = c.get("principal").orgId;
  if (!orgId) throw new BillingError("insufficient_scope", "this endpoint needs an organization's key");
  return orgId;
}
