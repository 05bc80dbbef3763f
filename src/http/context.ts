import type { Logger } from "pino";
import type { MaybeChainContext } from "../billing/deposits/context.js";
import type { KeyCache, Principal } from "../billing/api-keys.js";
import type { Metering } from "../billing/metering.js";
import type { ChainClient } from "../chain/client.js";
import type { Clock } from "../clock.js";
import type { Config } from "../config.js";
import type { Sql } from "../db/client.js";
import type { ReadRouting } from "../db/read-routing.js";
import type { Metrics } from "../observability/metrics.js";
import type { BillingError } from "../errors.js";
import type { RateLimiter } from "./middleware/rate-limiter.js";
import type { Queues } from "../jobs/queues.js";
import type { CardContext } from "../billing/payments/customers.js";
import { processorClient } from "../billing/payments/processor-client.js";

/** What bin/api.ts knows about its dependencies beyond PostgreSQL (which is asked on each probe). */
export type HealthProbes = {
  /** Redis as the process last saw it (RedisHealth): reconnection happens in the background. */
  redisUp?: () => boolean;
  /** True once shutdown has begun: load balancers should stop sending before the server closes. */
  draining?: () => boolean;
};

/** What an Authorization header proved (middleware/auth.ts resolveAuth). */
export type AuthOutcome = { principal: Principal } | { error: BillingError };

/** Everything a route needs, passed in by the process that builds the app (bin/api.ts, or a test). */
export type AppDeps = {
  sql: Sql;
  config: Config;
  clock: Clock;
  logger: Logger;
  metering: Metering;
  /** Optional: resolved keys for a few seconds (see KeyCache). */
  keyCache?: KeyCache;
  /** Optional: Prometheus metrics (GET /metrics) and the queues for the admin dashboard. */
  metrics?: Metrics;
  queues?: Queues;
  /** Optional: the chain, for HUSD deposit addresses and verify-and-record. */
  chain?: ChainClient;
  /** Optional: request limits per key and per client address, shared by every replica (Redis); without it nothing is limited. */
  rateLimiter?: RateLimiter;
  /**
   * Optional: the read replica (DATABASE_READ_URL). Read-mostly routes read through it
   * (http/read-mostly.ts) and every write request records its WAL position (middleware/record-writes.ts).
   */
  reads?: ReadRouting;
  /** Optional: Redis' state and shutdown, for /healthz and /readyz (PostgreSQL is asked on each probe). */
  health?: HealthProbes;
};

export type AppEnv = {
  Variables: {
    requestId: string;
    principal: Principal;
    /** What the Authorization header proved (middleware/auth.ts resolveAuth), with that header. */
    auth: { header: string | undefined; outcome: AuthOutcome };
    deps: AppDeps;
  };
};

const contexts = new WeakMap<AppDeps, MaybeChainContext>();

/** The service verbs' context for this app's dependencies (one per app: the catalog is the metering one). */
export function billingContext(deps: AppDeps): MaybeChainContext {
  let ctx = contexts.get(deps);
  if (!ctx) {
    ctx = {
      sql: deps.sql,
      clock: deps.clock,
      catalog: deps.metering.catalog,
      logger: deps.logger,
      config: deps.config,
      chain: deps.chain,
      ...(deps.queues ? { queues: deps.queues } : {}),
    };
    contexts.set(deps, ctx);
  }
  return ctx;
}

/** The context of verbs that call the card processor: 503 not_configured when it has no key. */
export function cardContext(deps: AppDeps): CardContext {
  return { ...billingContext(deps), processor: processorClient(deps.config) };
}
