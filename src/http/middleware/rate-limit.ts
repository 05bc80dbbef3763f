import type { Context, MiddlewareHandler } from "hono";
import type { Redis } from "ioredis";
import type { Logger } from "pino";
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, RLWrapperTimeouts } from "rate-limiter-flexible";
import type { KeyScope } from "../../billing/api-keys.js";
import type { Config } from "../../config.js";
import { BillingError } from "../../errors.js";
import type { AppEnv } from "../context.js";
import { resolveAuth } from "./auth.js";

/** At most `limit` requests per `periodMs` (whole seconds), counted in fixed windows of that length. */
export type RateRule = { limit: number; periodMs: number };
export type RateDecision = { allowed: true } | { allowed: false; retryAfterMs: number };

/** Redis taking longer than this counts as Redis being down for that request. */
const DECIDE_TIMEOUT_MS = 250;
/** At most one warning per this long while Redis is down, not one per request. */
const WARN_EVERY_MS = 10_000;

/**
 * Request counts shared by every API replica, kept in Redis by rate-limiter-flexible
 * (`RateLimiterRedis`: one atomic INCR-with-expiry script per request, a fixed window per rule).
 *
 * When Redis is down (the connection is not ready) or does not answer within 250 ms, each
 * process counts on its own in memory with the same rule until Redis is back: degraded, neither
 * open nor closed. Closed would turn a Redis outage into a billing outage (the gateway's
 * authorizations stop, and the gateway is told to fail closed when billing is down); open would
 * leave a flood unchecked exactly when something is already wrong. With N replicas a client then
 * gets at most N times its limit. A warning is logged every 10 s while this lasts.
 */
export class RateLimiter {
  readonly #redis: Redis;
  readonly #prefix: string;
  readonly #logger: Logger | undefined;
  readonly #limiters = new Map<string, { shared: RLWrapperTimeouts; local: RateLimiterMemory }>();
  #warnedAt = Number.NEGATIVE_INFINITY;

  /** `prefix` is REDIS_PREFIX: keys are `{prefix}:rl:<rule>:<bucket>`, in the queues' hash slot. */
  constructor(redis: Redis, prefix: string, opts: { logger?: Logger; timeoutMs?: number } = {}) {
    this.#redis = redis;
    this.#prefix = prefix;
    this.#logger = opts.logger;
    this.timeoutMs = opts.timeoutMs ?? DECIDE_TIMEOUT_MS;
  }
  readonly timeoutMs: number;

  async take(bucket: string, rule: RateRule): Promise<RateDecision> {
    const { shared, local } = this.#limitersFor(rule);
    try {
      await shared.consume(bucket);
      return { allowed: true };
    } catch (refusal) {
      if (refusal instanceof RateLimiterRes) return { allowed: false, retryAfterMs: refusal.msBeforeNext };
      this.#warn(refusal);
    }
    try {
      await local.consume(bucket);
      return { allowed: true };
    } catch (refusal) {
      if (refusal instanceof RateLimiterRes) return { allowed: false, retryAfterMs: refusal.msBeforeNext };
      throw refusal;
    }
  }

  #limitersFor(rule: RateRule) {
    const duration = Math.max(1, Math.ceil(rule.periodMs / 1000));
    const name = `${rule.limit}/${duration}s`;
    let limiters = this.#limiters.get(name);
    if (!limiters) {
      const options = { points: rule.limit, duration, keyPrefix: `{${this.#prefix}}:rl:${name}` };
      const redis = new RateLimiterRedis({ ...options, storeClient: this.#redis, rejectIfRedisNotReady: true });
      limiters = {
        shared: new RLWrapperTimeouts({ limiter: redis, timeoutMs: this.timeoutMs }),
        local: new RateLimiterMemory(options),
      };
      this.#limiters.set(name, limiters);
    }
    return limiters;
  }

  #warn(err: unknown) {
    const now = performance.now();
    if (now - this.#warnedAt < WARN_EVERY_MS) return;
    this.#warnedAt = now;
    this.#logger?.warn(
      { err },
      "rate limiter: Redis unavailable or slow; counting per process until it answers (limits are per replica meanwhile)",
    );
  }
}

/** The rule for a request of this kind (see Config's RATE_LIMIT_*). */
export function ruleFor(config: Config, who: KeyScope | "anonymous"): RateRule {
  const perSecond = {
    gateway: config.RATE_LIMIT_GATEWAY_PER_SECOND,
    org: config.RATE_LIMIT_ORG_PER_SECOND,
    admin: config.RATE_LIMIT_ADMIN_PER_SECOND,
    anonymous: config.RATE_LIMIT_ANONYMOUS_PER_SECOND,
  }[who];
  const seconds = config.RATE_LIMIT_WINDOW_SECONDS;
  return { limit: perSecond * seconds, periodMs: seconds * 1000 };
}

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
  const auth = c.req.header("authorization") === undefined ? undefined : await resolveAuth(c);
  const principal = auth && "principal" in auth ? auth.principal : undefined;
  const decision = principal
    ? await rateLimiter.take(`key:${principal.keyId}`, ruleFor(config, principal.scope))
    : await rateLimiter.take(`ip:${clientAddress(c, config.TRUSTED_PROXY_HOPS)}`, ruleFor(config, "anonymous"));
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
  if (hops === 0) return peer;
  const forwarded = (c.req.header("x-forwarded-for") ?? "")
    .split(",")
    .map((s) => s.trim())
    .filter(Boolean);
  return forwarded[forwarded.length - hops] ?? peer;
}
