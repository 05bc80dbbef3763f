import type { MiddlewareHandler } from "hono";
import { authenticate, type KeyScope } from "../../billing/api-keys.js";
import { BillingError } from "../../errors.js";
import type { AppEnv } from "../context.js";

/**
 * `Authorization: Bearer hk-…`. 401 when the key is missing, malformed, unknown or revoked;
 * 403 when it is valid but of another scope than the route accepts.
 */
export function requireScope(...scopes: KeyScope[]): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const header = c.req.header("authorization");
    if (!header) throw new BillingError("missing_api_key", "send your API key as Authorization: Bearer hk-…");
    const match = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!match) throw new BillingError("invalid_api_key", "the Authorization header must be Bearer hk-…");
    const { sql, config, keyCache } = c.get("deps");
    const principal = await authenticate(sql, match[1]!, config.ADMIN_API_KEY, keyCache);
    if (!scopes.includes(principal.scope)) {
      throw new BillingError(
        "insufficient_scope",
        `this endpoint needs a key with scope ${scopes.join(" or ")}; this key has scope ${principal.scope}`,
      );
    }
    c.set("principal", principal);
    await next();
  };
}

/** The organization an org- or gateway-scoped principal speaks for. */
export function principalOrgId(c: { get(key: "principal"): AppEnv["Variables"]["principal"] }): string {
  const orgId = c.get("principal").orgId;
  if (!orgId) throw new BillingError("insufficient_scope", "this endpoint needs an organization's key");
  return orgId;
}
