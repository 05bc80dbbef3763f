import type { Context, MiddlewareHandler } from "hono";
import { getCookie } from "hono/cookie";
import { authenticate, type KeyPermission, type KeyScope, KeyUsage, type Principal } from "../../billing/api-keys.js";
import {
  authenticatePortalSession,
  csrfTokenMatches,
  isPortalPrincipal,
  type PortalPrincipal,
} from "../../billing/portal-sessions.js";
import { BillingError } from "../../errors.js";
import { type AppEnv, type AuthOutcome, billingContext } from "../context.js";

/** The billing portal's session cookie (HttpOnly): the second kind of credential, after API keys. */
export const PORTAL_COOKIE = "hanzo_portal";
/** The header a portal page sends its session's CSRF token in, on every write. */
export const CSRF_HEADER = "x-csrf-token";

/**
 * The request's credential: its Authorization header, or else its portal session cookie. A
 * request with both speaks with the header (a key is never mixed with a browser session).
 */
export function credentialOf(c: Context<AppEnv>): { header: string } | { cookie: string } | undefined {
  const header = c.req.header("authorization");
  if (header !== undefined) return { header };
  const cookie = getCookie(c, PORTAL_COOKIE);
  return cookie !== undefined ? { cookie } : undefined;
}

/** What the request's Authorization header proved, worked out once per header value. */

/**
 * Resolves `Authorization: Bearer hk-…` to its principal, or the 401 it deserves (missing,
 * malformed, unknown or revoked key), once per request: the app-wide rate limit and the route's
 * requireScope both ask. `beforeLookup` runs just before PostgreSQL is asked (the key is in
 * neither of this process's caches) and may refuse the request by throwing. Remembered with the header it was computed for, since the queue
 * dashboard turns Basic auth into Bearer between the two.
 */
export async function resolveAuth(c: Context<AppEnv>, beforeLookup?: () => Promise<void>): Promise<AuthOutcome> {
  const credential = credentialOf(c);
  const header = credential && "cookie" in credential ? `portal-cookie ${credential.cookie}` : credential?.header;
  const known = c.get("auth");
  if (known && known.header === header) return known.outcome;
  let outcome: AuthOutcome;
  try {
    outcome = {
      principal:
        credential && "cookie" in credential
          ? await authenticateCookie(c, credential.cookie, beforeLookup)
          : await authenticateHeader(c, credential?.header, beforeLookup),
    };
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

async function authenticateCookie(
  c: Context<AppEnv>,
  token: string,
  beforeLookup?: () => Promise<void>,
): Promise<PortalPrincipal> {
  await beforeLookup?.();
  return authenticatePortalSession(billingContext(c.get("deps")), token);
}

const SAFE_METHODS = new Set(["GET", "HEAD", "OPTIONS"]);

/**
 * A portal session's writes carry its CSRF token in X-CSRF-Token (the page reads it from
 * GET /portal/session, which another site cannot read): 403 csrf_token_invalid without it. The
 * SameSite=Strict cookie already keeps other sites' requests from carrying the session; this is
 * the second lock.
 */
function checkCsrf(c: Context<AppEnv>, principal: Principal) {
  if (!isPortalPrincipal(principal) || SAFE_METHODS.has(c.req.method)) return;
  if (!csrfTokenMatches(principal, c.req.header(CSRF_HEADER)))
    throw new BillingError(
      "csrf_token_invalid",
      "this change was refused because it did not come from the billing portal page: reload the page and try again",
    );
}

/**
 * `Authorization: Bearer hk-…`, or a billing portal session's cookie (acting as the org key that
 * made its link, with CSRF checked on writes). 401 when the key is missing, malformed, unknown or revoked;
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
    checkCsrf(c, principal);
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
