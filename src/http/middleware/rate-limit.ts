import type { MiddlewareHandler } from "hono";
import type { Redis } from "ioredis";
import type { Config } from "../../config.js";
import { BillingError } from "../../errors.js";
import type { AppEnv } from "../context.js";

/** At most `limit` requests per `periodMs`, spread evenly: a burst of `limit`, then one every periodMs / limit. */
export type RateRule = { limit: number; periodMs: number };
export type RateDecision = { allowed: true } | { allowed: false; retryAfterMs: number };

/**
 * GCRA (the generic cell rate algorithm) in one Redis script: one key per bucket holding the
 * theoretical arrival time of the next request, read and moved atomically with Redis' own clock,
 * so every API replica shares one limit and no replica's clock matters. Nothing is stored for a
 * bucket that has been quiet for a whole period (the key expires).
 */
const GCRA = `
local t = redis.call('TIME')
local now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
local period = tonumber(ARGV[1])
local interval = period / tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local next_tat = tat + interval
local allow_at = next_tat - period
if allow_at > now then return {0, math.ceil(allow_at - now)} end
redis.call('SET', KEYS[1], string.format('%.3f', next_tat), 'PX', math.ceil(next_tat - now))
return {1, 0}
`;

/** Redis taking longer than this lets the request through (see rateLimit). */
const DECIDE_TIMEOUT_MS = 500;

export class RateLimiter {
  readonly #redis: Redis & { hanzoGcra?: (key: string, periodMs: number, limit: number) => Promise<[number, number]> };
  readonly #prefix: string;

  /** `prefix` is REDIS_PREFIX: keys are `{prefix}:rate:<bucket>`, beside the queues in the same hash slot. */
  constructor(redis: Redis, prefix: string) {
    this.#redis = redis;
    this.#prefix = prefix;
    if (!("hanzoGcra" in redis)) redis.defineCommand("hanzoGcra", { numberOfKeys: 1, lua: GCRA });
  }

  async take(bucket: string, rule: RateRule): Promise<RateDecision> {
    const [allowed, retryAfterMs] = await this.#redis.hanzoGcra!(
      `{${this.#prefix}}:rate:${bucket}`,
      rule.periodMs,
      rule.limit,
    );
    return allowed === 1 ? { allowed: true } : { allowed: false, retryAfterMs };
  }
}

/**
 * 429 `rate_limited` with `Retry-After` (whole seconds) once a bucket is used up; put it after
 * authentication, since the bucket is usually the principal's org. Without a limiter in the app's
 * deps (tests that do not ask for one) it lets everything through. If Redis does not answer within
 * half a second the request is let through and a warning logged: the limits guard our RPC quota
 * and database from one noisy org, they are not what keeps money right.
 */
export function rateLimit(
  name: string,
  rule: (config: Config) => RateRule,
  bucketOf: (c: Parameters<MiddlewareHandler<AppEnv>>[0]) => string,
): MiddlewareHandler<AppEnv> {
  return async (c, next) => {
    const { rateLimiter, config, logger } = c.get("deps");
    if (rateLimiter) {
      const decision = await decideWithin(
        rateLimiter.take(`${name}:${bucketOf(c)}`, rule(config)),
        DECIDE_TIMEOUT_MS,
      ).catch((err: unknown) => {
        logger.warn({ err, limit: name }, "rate limiter unavailable; request let through");
        return { allowed: true } as const;
      });
      if (decision === "timeout")
        logger.warn({ limit: name }, "rate limiter did not answer in time; request let through");
      else if (!decision.allowed) {
        const seconds = Math.max(1, Math.ceil(decision.retryAfterMs / 1000));
        c.header("Retry-After", String(seconds));
        throw new BillingError(
          "rate_limited",
          `too many requests to this endpoint for this organization; retry in ${seconds} s`,
        );
      }
    }
    await next();
  };
}

function decideWithin(decision: Promise<RateDecision>, ms: number): Promise<RateDecision | "timeout"> {
  let timer: NodeJS.Timeout | undefined;
  const timeout = new Promise<"timeout">((resolve) => (timer = setTimeout(() => resolve("timeout"), ms)));
  return Promise.race([decision, timeout]).finally(() => clearTimeout(timer));
}
