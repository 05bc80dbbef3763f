import { isIPv6 } from "node:net";
import type { Context, MiddlewareHandler } from "hono";
import type { Config } from "../../config.js";
import { BillingError } from "../../errors.js";
import type { AppEnv } from "../context.js";
import { PROCESSOR_WEBHOOK_PATH } from "../routes/webhooks/receive-processor-event.js";
import { credentialOf, resolveAuth } from "./auth.js";
import { isPortalPrincipal } from "../../billing/portal-sessions.js";
import { type RateRule, ruleFor } from "./rate-limiter.js";

/** Probes are never limited: a load balancer must not take a replica out because a neighbour is noisy. */
const UNLIMITED_PATHS = new Set(["/healthz", "/readyz"]);

/**
 * Every request is counted, app-wide, before its route runs: a request with a valid key against
 * that key (gateway, org and admin keys each by their own rule), every other request (no key, a
 * malformed, unknown or revoked key) against its client address with the low anonymous rule. The
 * key is resolved once here and reused by requireScope. Beyond the limit: 429 `rate_limited` with
 * `Retry-After` in whole seconds. Without a limiter in the app's deps nothing is limited.
 */
export const limitRequests: MiddlewareHandler<AppEnv> = async (c, next) => {
  const { rateLimiter, config } = c.get("deps");
  if (!rateLimiter || UNLIMITED_PATHS.has(c.req.path)) return next();
  const address = () => clientAddress(c, config.TRUSTED_PROXY_HOPS);
  const anonymous = ruleFor(config, "anonymous");
  // A key this process has not resolved lately costs a PostgreSQL query. Keys PostgreSQL refused
  // are counted per address (`authfail:`, the anonymous rule); once an address has used that up,
  // its keys are refused before the query, so a flood of made-up keys stops reaching the
  // database at the address's limit. Valid keys from that address are refused too until the
  // window ends, unless this process has them cached; requests without a key never count there.
  let lookedUp = false;
  const beforeLookup = async () => {
    const decision = await rateLimiter.exhausted(`authfail:${address()}`, anonymous);
    if (!decision.allowed) refuse(c, decision.retryAfterMs, "from this address after too many unknown keys");
    lookedUp = true;
  };
  const auth = credentialOf(c) === undefined ? undefined : await resolveAuth(c, beforeLookup);
  const principal = auth && "principal" in auth ? auth.principal : undefined;
  if (lookedUp && !principal) await rateLimiter.take(`authfail:${address()}`, anonymous);
  const decision = principal
    ? await rateLimiter.take(
        // A portal session counts apart from its key: a page's burst of reads does not spend the key's.
        isPortalPrincipal(principal) ? `portal:${principal.portalSession.id}` : `key:${principal.keyId}`,
        ruleFor(config, principal.scope),
      )
    : // The card processor's deliveries carry no key and come in bursts from a few addresses: their
      // own, higher rule per address, so a burst of payments is not held back with anonymous
      // traffic (each costs no query before its signature is verified).
      c.req.path === PROCESSOR_WEBHOOK_PATH
      ? await rateLimiter.take(`processor:${address()}`, ruleFor(config, "processor_webhook"))
      : await rateLimiter.take(`ip:${address()}`, anonymous);
  if (!decision.allowed) refuse(c, decision.retryAfterMs, principal ? "for this API key" : "from this address");
  await next();
};

/**
 * A rule of one route on top of the app-wide one, e.g. per organization on an endpoint that
 * costs an RPC call. Put it after requireScope when `bucketOf` reads the principal.
 */
export function rateLimit(
  name: string,
  rule: (config: Config) => RateRule,
  bucketOf: (c: Context<AppEnv>) => string,
): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const { rateLimiter, config } = c.get("deps");
    if (rateLimiter) {
      const decision = await rateLimiter.take(`${name}:${bucketOf(c)}`, rule(config));
      if (!decision.allowed) refuse(c, decision.retryAfterMs, "to this endpoint for this organization");
    }
    await next();
  };
}

function refuse(c: Context<AppEnv>, retryAfterMs: number, scope: string): never {
  const seconds = Math.max(1, Math.ceil(retryAfterMs / 1000));
  c.header("Retry-After", String(seconds));
  throw new BillingError("rate_limited", `too many requests ${scope}; retry in ${seconds} s`);
}

type NodeEnv = { incoming?: { socket?: { remoteAddress?: string } } } | undefined;

/**
 * The client's address: the TCP peer, or behind `hops` trusted proxies the address the outermost
 * of them saw (X-Forwarded-For is appended to by each proxy, so only its last `hops` entries were
 * written by proxies we trust; anything before them is whatever the client sent).
 */
export function clientAddress(c: Context<AppEnv>, hops: number): string {
  const peer = (c.env as NodeEnv)?.incoming?.socket?.remoteAddress ?? "unknown";
  if (hops === 0) return addressBucket(peer);
  const forwarded = (c.req.header("x-forwarded-for") ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  return addressBucket(forwarded[forwarded.length - hops] ?? peer);
}

/**
 * Whose count an address is: an IPv4 address (also written IPv4-mapped, `::ffff:a.b.c.d`) on its
 * own, an IPv6 address by its /64, since one subscriber is routinely given a whole /64 and could
 * otherwise take a fresh count per request from 2^64 addresses.
 */
export function addressBucket(address: string): string {
  const bare = address.replace(/^\[|\]$/g, "").replace(/%.*$/, "");
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(bare);
  if (mapped) return mapped[1] as string;
  if (!isIPv6(bare)) return bare;
  const [head = "", tail] = bare.toLowerCase().split("::");
  const left = head ? head.split(":") : [];
  const right = tail ? tail.split(":") : [];
  const groups = tail === undefined ? left : [...left, ...Array(8 - left.length - right.length).fill("0"), ...right];
  return `${groups
    .slice(0, 4)
    .map((g) => g.replace(/^0+(?=.)/, ""))
    .join(":")}::/64`;
}
