import type { MiddlewareHandler } from "hono";
import type { KeyScope } from "../../billing/api-keys.js";
import type { AppEnv } from "../context.js";
import { requireScope } from "../middleware/auth.js";

/** The areas of the API: each is a folder under routes/ and a tag of the OpenAPI document. */
export const AREAS = {
  gateway: "What Hanzo's gateway calls around every billable request (gateway key).",
  billing: "An organization's balance, usage, invoices and saved payment methods (org key).",
  husd: "Top-ups in HUSD on Hanzo Mainnet: deposit address, verify-and-record, deposits (org key).",
  pricing: "The public pricing catalog (no key).",
  webhooks: "Events from the card processor, authenticated by their signature (no key).",
  admin: "Operators: organizations, keys, credits, subscriptions, cycles and invoices (admin key).",
} as const;
export type Area = keyof typeof AREAS;

const REQUIRES: Record<KeyScope, string> = {
  org: "Requires an org key; acts on that key's organization.",
  gateway: "Requires a gateway key; acts for the organization named in the request.",
  admin: "Requires an admin key.",
};

const join = (...parts: (string | undefined)[]) => parts.filter(Boolean).join("\n\n");

/**
 * An operation that needs a key of `scope`: the scope is enforced (requireScope, then any further
 * `middleware`) and documented (bearer security, and a description that names the scope) from
 * this one declaration, so the document cannot say something other than what the route does.
 */
export function requiresKey(opts: {
  scope: KeyScope;
  area: Area;
  description?: string;
  middleware?: MiddlewareHandler<AppEnv>[];
}) {
  return {
    tags: [opts.area],
    security: [{ bearer: [] }],
    middleware: [requireScope(opts.scope), ...(opts.middleware ?? [])],
    description: join(REQUIRES[opts.scope], opts.description),
  };
}

/** An operation without an API key (`security: []`, explicitly); `description` says what, if anything, authenticates it. */
export function withoutKey(opts: { area: Area; description: string }) {
  return { tags: [opts.area], security: [], description: opts.description };
}
