import type { Cluster, Redis } from "ioredis";
import type { Logger } from "pino";
import { RateLimiterMemory, RateLimiterRedis, RateLimiterRes, RLWrapperTimeouts } from "rate-limiter-flexible";
import type { KeyScope } from "../../billing/api-keys.js";
import type { Config } from "../../config.js";

/** At most `limit` requests per `periodMs` (whole seconds), counted in fixed windows of that length. */
export type RateRule = { limit: number; periodMs: number };
export type RateDecision = { allowed: true } | { allowed: false; retryAfterMs: number };

/** Redis taking longer than this counts as Redis being down for that request. */
const DECIDE_TIMEOUT_MS = 250;
/** After Redis failed or timed out, it is asked again only after this long (counting in memory meanwhile). */
const RETRY_REDIS_AFTER_MS = 1_000;
/** At most one warning per this long while Redis is down, not one per request. */
const WARN_EVERY_MS = 10_000;
/** Rules of at least this many requests per window take their points from Redis in leases... */
const LEASE_MIN_POINTS = 10_000;
/** ...of this fraction of the rule (200 points of the gateway's 200,000 per 10 s by default). */
const LEASE_FRACTION = 1 / 1_000;

type Limiters = {
  points: number;
  /** Points taken from Redis at once: 1, or a lease for rules as high as the gateway's. */
  chunk: number;
  shared: RLWrapperTimeouts;
  local: RateLimiterMemory;
  /** Per bucket, points this process took from Redis and has not handed out yet, until the window ends. */
  leases: Map<string, { left: number; until: number; refused: boolean }>;
  refills: Map<string, Promise<void>>;
};

/**
 * Request counts shared by every API replica, kept in Redis by rate-limiter-flexible
 * (`RateLimiterRedis`: one atomic INCR-with-expiry script per count, a fixed window per rule).
 *
 * Cheap on the gateway's path: a rule of 10,000 or more per window (the gateway keys') takes its
 * points from Redis 1/1,000 of the rule at a time and hands them out from memory, one Redis call
 * per lease, not per request (one refill at a time per bucket). A client still never gets more
 * than its limit across replicas: every leased point was counted in Redis first. It may get less:
 * a replica's unused lease at the end of a window, at most 1/1,000 of the limit. A bucket over its
 * limit is refused from memory until its window ends (`inMemoryBlockOnConsumed`), so a flood past
 * the limit costs Redis nothing.
 *
 * When Redis is down (the connection is not ready) or does not answer within 250 ms, each
 * process counts on its own in memory with the same rule, and asks Redis again 1 s later (so a
 * slow Redis delays one request a second by 250 ms, not every request): degraded, neither
 * open nor closed. Closed would turn a Redis outage into a billing outage (the gateway's
 * authorizations stop, and the gateway is told to fail closed when billing is down); open would
 * leave a flood unchecked exactly when something is already wrong. With N replicas a client then
 * gets at most N times its limit. A warning is logged every 10 s while this lasts.
 */
export class RateLimiter {
  readonly #redis: Redis | Cluster;
  readonly #prefix: string;
  readonly #logger: Logger | undefined;
  readonly #limiters = new Map<string, Limiters>();
  #warnedAt = Number.NEGATIVE_INFINITY;
  #redisDownUntil = Number.NEGATIVE_INFINITY;

  /**
   * `prefix` is REDIS_PREFIX: keys are `{prefix}:rl:<rule>:<bucket>`, in the queues' hash slot. Each
   * count is one script on one key, so a Redis Cluster client works as one Redis does.
   */
  constructor(
    redis: Redis | Cluster,
    prefix: string,
    opts: { logger?: Logger; timeoutMs?: number; retryAfterMs?: number } = {},
  ) {
    this.#redis = redis;
    this.#prefix = prefix;
    this.#logger = opts.logger;
    this.timeoutMs = opts.timeoutMs ?? DECIDE_TIMEOUT_MS;
    this.retryRedisAfterMs = opts.retryAfterMs ?? RETRY_REDIS_AFTER_MS;
  }
  readonly timeoutMs: number;
  readonly retryRedisAfterMs: number;

  async take(bucket: string, rule: RateRule): Promise<RateDecision> {
    const limiters = this.#limitersFor(rule);
    if (performance.now() >= this.#redisDownUntil) {
      const shared = await this.#takeShared(limiters, bucket);
      if (shared) return shared;
    }
    try {
      await limiters.local.consume(bucket);
      return { allowed: true };
    } catch (refusal) {
      if (refusal instanceof RateLimiterRes) return { allowed: false, retryAfterMs: refusal.msBeforeNext };
      throw refusal;
    }
  }

  /** Whether `bucket` has used up `rule` in its current window, without counting anything. */
  async exhausted(bucket: string, rule: RateRule): Promise<RateDecision> {
    const limiters = this.#limitersFor(rule);
    let used: RateLimiterRes | null | undefined;
    if (performance.now() >= this.#redisDownUntil) {
      try {
        used = await limiters.shared.get(bucket);
      } catch (err) {
        this.#redisFailed(err);
      }
    }
    if (used === undefined) used = await limiters.local.get(bucket);
    return used && used.consumedPoints >= rule.limit
      ? { allowed: false, retryAfterMs: used.msBeforeNext }
      : { allowed: true };
  }

  /** Redis's decision, or undefined when Redis failed or was too slow to give one. */
  async #takeShared(l: Limiters, bucket: string): Promise<RateDecision | undefined> {
    if (l.chunk > 1) {
      const leased = this.#fromLease(l, bucket);
      if (leased) return leased;
      let refill = l.refills.get(bucket);
      if (!refill) {
        refill = this.#refill(l, bucket).finally(() => l.refills.delete(bucket));
        l.refills.set(bucket, refill);
      }
      await refill;
      if (performance.now() < this.#redisDownUntil) return undefined;
      // Requests that waited for the refill share it; past it, each asks Redis for its own point.
      const after = this.#fromLease(l, bucket);
      if (after) return after;
    }
    try {
      await l.shared.consume(bucket);
      return { allowed: true };
    } catch (refusal) {
      if (refusal instanceof RateLimiterRes) return { allowed: false, retryAfterMs: refusal.msBeforeNext };
      this.#redisFailed(refusal);
      return undefined;
    }
  }

  #fromLease(l: Limiters, bucket: string): RateDecision | undefined {
    const lease = l.leases.get(bucket);
    if (!lease) return undefined;
    const now = performance.now();
    if (lease.until <= now) {
      l.leases.delete(bucket);
      return undefined;
    }
    if (lease.left > 0) {
      lease.left--;
      return { allowed: true };
    }
    return lease.refused ? { allowed: false, retryAfterMs: lease.until - now } : undefined;
  }

  async #refill(l: Limiters, bucket: string): Promise<void> {
    const startedAt = performance.now();
    try {
      const taken = await l.shared.consume(bucket, l.chunk);
      l.leases.set(bucket, { left: l.chunk, until: startedAt + taken.msBeforeNext, refused: false });
    } catch (refusal) {
      if (!(refusal instanceof RateLimiterRes)) return this.#redisFailed(refusal);
      // Redis counted the whole lease; the points that were still free when it did are ours. (No
      // points consumed: refused by the in-memory block, Redis was not asked.)
      const free = refusal.consumedPoints === 0 ? 0 : Math.max(0, l.points - (refusal.consumedPoints - l.chunk));
      l.leases.set(bucket, { left: Math.min(free, l.chunk), until: startedAt + refusal.msBeforeNext, refused: true });
    }
    if (l.leases.size > 10_000) for (const [b, lease] of l.leases) if (lease.until <= startedAt) l.leases.delete(b);
  }

  #limitersFor(rule: RateRule): Limiters {
    const duration = Math.max(1, Math.ceil(rule.periodMs / 1000));
    const name = `${rule.limit}/${duration}s`;
    let limiters = this.#limiters.get(name);
    if (!limiters) {
      const options = { points: rule.limit, duration, keyPrefix: `{${this.#prefix}}:rl:${name}` };
      const redis = new RateLimiterRedis({
        ...options,
        storeClient: this.#redis,
        rejectIfRedisNotReady: true,
        inMemoryBlockOnConsumed: rule.limit,
      });
      limiters = {
        points: rule.limit,
        chunk: rule.limit >= LEASE_MIN_POINTS ? Math.floor(rule.limit * LEASE_FRACTION) : 1,
        shared: new RLWrapperTimeouts({ limiter: redis, timeoutMs: this.timeoutMs }),
        local: new RateLimiterMemory(options),
        leases: new Map(),
        refills: new Map(),
      };
      this.#limiters.set(name, limiters);
    }
    return limiters;
  }

  #redisFailed(err: unknown) {
    const now = performance.now();
    this.#redisDownUntil = now + this.retryRedisAfterMs;
    if (now - this.#warnedAt < WARN_EVERY_MS) return;
    this.#warnedAt = now;
    this.#logger?.warn(
      { err },
      "rate limiter: Redis unavailable or slow; counting per process until it answers (limits are per replica meanwhile)",
    );
  }
}

/** The rule for a request of this kind (see Config's RATE_LIMIT_*). */
export function ruleFor(config: Config, who: KeyScope | "anonymous" | "processor_webhook"): RateRule {
  const perSecond = {
    processor_webhook: config.RATE_LIMIT_PROCESSOR_WEBHOOK_PER_SECOND,
    gateway: config.RATE_LIMIT_GATEWAY_PER_SECOND,
    org: config.RATE_LIMIT_ORG_PER_SECOND,
    admin: config.RATE_LIMIT_ADMIN_PER_SECOND,
    anonymous: config.RATE_LIMIT_ANONYMOUS_PER_SECOND,
  }[who];
  const seconds = config.RATE_LIMIT_WINDOW_SECONDS;
  return { limit: perSecond * seconds, periodMs: seconds * 1000 };
}
