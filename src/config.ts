import { z } from "zod";
import { parseRedisUrl, RedisUrlError } from "./redis-url.js";
import { APP_LOGIN, INDEXER_LOGIN, OWNER_LOGIN, withUser } from "./db/roles.js";

/** What an API key looks like, for authentication and ADMIN_API_KEY alike: `hk-` and 16-128 characters. */
export const API_KEY_PATTERN = /^hk-[A-Za-z0-9_-]{16,128}$/;

const address = z.string().regex(/^0x[0-9a-fA-F]{40}$/, "must be a 0x-prefixed 20-byte hex address");
const baseUnits = z.string().regex(/^\d{1,78}$/, "must be a whole number of token base units");
const usdCents = z.string().regex(/^\d{1,7}(\.\d{1,2})?$/, "must be a USD amount like 5.00 (at most 2 decimals)");
const bool = z.enum(["true", "false", "1", "0"]).transform((v) => v === "true" || v === "1");

/** Every environment variable the processes read, with defaults that work on a fresh machine of this project. */
export const Config = z.object({
  NODE_ENV: z.enum(["development", "test", "production"]).default("development"),
  LOG_LEVEL: z.enum(["trace", "debug", "info", "warn", "error", "fatal", "silent"]).default("info"),
  /** The API and workers, as a member of hanzo_app: rows only, owns nothing (README, "Database roles"). */
  DATABASE_URL: z.url().default(`postgres://${APP_LOGIN}@127.0.0.1:5432/hanzo_billing`),
  /** Migrations and catalog loads, as the tables' owner; unset: DATABASE_URL's database as postgres, no password. */
  DATABASE_OWNER_URL: z.url().optional(),
  /** Ponder, as a member of hanzo_indexer; unset: DATABASE_URL's database as hanzo_indexer_user, no password. */
  INDEXER_DATABASE_URL: z.url().optional(),
  DATABASE_POOL_MAX: z.coerce.number().int().min(1).max(200).default(10),
  /**
   * The metering path's group commit (src/billing/metering.ts): lanes that write batches in
   * parallel (organizations are split over them), and batches a lane may have in flight at once.
   */
  METERING_LANES: z.coerce.number().int().min(1).max(16).default(2),
  METERING_MAX_IN_FLIGHT: z.coerce.number().int().min(1).max(8).default(1),
  /**
   * Optional: a streaming replica of DATABASE_URL's server, same database and role. The API reads
   * the read-mostly endpoints from it when it has replayed the org's last write (README, "Read replica").
   */
  DATABASE_READ_URL: z.url().optional(),
  /** Ponder writes its tables here; the app only reads them. */
  PONDER_SCHEMA: z
    .string()
    .regex(/^[a-z_][a-z0-9_]*$/)
    .default("husd_indexer"),
  /**
   * One Redis (`redis://host:port`) or a Redis Cluster's seed nodes (`redis-cluster://host:port,host:port,…`
   * or several `redis://` URLs separated by commas): src/redis-url.ts.
   */
  REDIS_URL: z
    .string()
    .default("redis://127.0.0.1:6379")
    .superRefine((value, ctx) => {
      try {
        parseRedisUrl(value);
      } catch (err) {
        if (!(err instanceof RedisUrlError)) throw err;
        ctx.addIssue({ code: "custom", message: err.message });
      }
    }),
  /**
   * Key prefix for every BullMQ queue, so several deployments (or test files) can share one Redis.
   * BullMQ's keys are `{REDIS_PREFIX}:<queue>:…`: the braces are a Redis Cluster hash tag, so every
   * key of every queue (and the rate limiter's) hashes to one slot, as BullMQ's scripts need.
   */
  REDIS_PREFIX: z
    .string()
    .min(1)
    .regex(/^[^{}]+$/, "must not contain { or }: it is written inside the hash tag {REDIS_PREFIX}")
    .default("hanzo"),
  HOST: z.string().default("127.0.0.1"),
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  /** Bootstraps operators: a key with admin scope that is not stored in the database. */
  ADMIN_API_KEY: z
    .string()
    .regex(API_KEY_PATTERN, "must look like hk-… with 16 to 128 letters, digits, _ or - after hk- (as every API key)")
    .optional(),
  RPC_URL: z.url().default("http://127.0.0.1:8545"),
  CHAIN_ID: z.coerce.number().int().positive().default(36963),
  /**
   * The chain as a customer's wallet adds it (the billing portal's "add the Hanzo chain", EIP-3085):
   * its name, a JSON-RPC URL the public may use (never RPC_URL, which may carry a provider key;
   * unset: the portal cannot add the chain and says so), an explorer, and the native currency.
   */
  CHAIN_NAME: z.string().min(1).max(64).default("Hanzo"),
  CHAIN_PUBLIC_RPC_URL: z.url().optional(),
  CHAIN_EXPLORER_URL: z.url().optional(),
  CHAIN_NATIVE_SYMBOL: z.string().min(2).max(6).default("HANZO"),
  HUSD_ADDRESS: address.default("0xe9e32EF8aaECB68794Da3E1E9191b0a64CeC2c83"),
  HUSD_DECIMALS: z.coerce.number().int().min(0).max(36).default(18),
  HUSD_START_BLOCK: z.coerce.number().int().min(0).default(0),
  DEPOSIT_FACTORY_ADDRESS: address.optional(),
  /** Credit only when the block is at or below the chain's `finalized` tag (when true) and this deep. */
  FINALITY_CONFIRMATIONS: z.coerce.number().int().min(0).max(10_000).default(12),
  FINALITY_REQUIRE_FINALIZED_TAG: bool.default(true),
  /** Transfers below this many base units are recorded but never credited (0.01 HUSD by default). */
  HUSD_DUST_MINIMUM: baseUnits.default("10000000000000000"),
  /**
   * Requests a second each key may make on average, all API replicas together (Redis), counted
   * over windows of RATE_LIMIT_WINDOW_SECONDS (so a burst of rate × window is allowed). Gateway
   * keys carry every org's metering; anonymous is per client address, for requests without a
   * valid key (none, malformed, unknown or revoked) as well. The card processor's webhook
   * deliveries come in bursts from a few addresses and are counted per address by their own rule.
   */
  RATE_LIMIT_GATEWAY_PER_SECOND: z.coerce.number().int().min(1).max(1_000_000).default(20_000),
  RATE_LIMIT_ORG_PER_SECOND: z.coerce.number().int().min(1).max(1_000_000).default(50),
  RATE_LIMIT_ADMIN_PER_SECOND: z.coerce.number().int().min(1).max(1_000_000).default(50),
  RATE_LIMIT_ANONYMOUS_PER_SECOND: z.coerce.number().int().min(1).max(1_000_000).default(20),
  RATE_LIMIT_PROCESSOR_WEBHOOK_PER_SECOND: z.coerce.number().int().min(1).max(1_000_000).default(500),
  RATE_LIMIT_WINDOW_SECONDS: z.coerce.number().int().min(1).max(3_600).default(10),
  /** false: no request is counted or limited (the husd top-up limit included); for measuring what limits cost. */
  RATE_LIMITS_ENABLED: bool.default(true),
  /** Proxies in front of the API that append to X-Forwarded-For (0: the TCP peer is the client). */
  TRUSTED_PROXY_HOPS: z.coerce.number().int().min(0).max(10).default(0),
  /** /metrics aggregates whole tables (holds, postings, deposits) at most once per this many seconds (0: every scrape). */
  METRICS_SNAPSHOT_SECONDS: z.coerce.number().int().min(0).max(3_600).default(30),
  /**
   * CSV exports one API process streams at once (each holds a database connection while its client
   * reads); beyond it an export request is refused with 429 and Retry-After.
   */
  EXPORTS_MAX_CONCURRENT: z.coerce.number().int().min(1).max(100).default(2),
  /** When set, /metrics answers only `Authorization: Bearer <this token>` (at least 16 characters). */
  METRICS_TOKEN: z.string().min(16).max(256).optional(),
  /** POST /v1/billing/husd/topups per org: at most this many per period (a burst of this many, then evenly spread). */
  HUSD_TOPUP_RATE_LIMIT: z.coerce.number().int().min(1).max(1_000_000).default(30),
  HUSD_TOPUP_RATE_PERIOD_SECONDS: z.coerce.number().int().min(1).max(86_400).default(60),
  /** A top-up's transaction with more logs than this is refused (422 too_many_logs); the indexer still finds its transfers. */
  HUSD_TOPUP_MAX_LOGS: z.coerce.number().int().min(1).max(100_000).default(1000),
  /** How often workers look for newly indexed transfers and undecided deposits. */
  DEPOSIT_SCAN_INTERVAL_MS: z.coerce.number().int().min(100).max(60_000).default(1000),
  /** At most this many deposit checks a second, across every worker process (each check is ~4 RPC calls). */
  DEPOSIT_CHECKS_PER_SECOND: z.coerce.number().int().min(1).max(10_000).default(20),
  /** How often workers reconcile the ledger (checkLedger: caches, balance, held vs live holds); a run reads every entry. */
  LEDGER_CHECK_INTERVAL_MS: z.coerce.number().int().min(100).max(86_400_000).default(600_000),
  /** How many months ahead of the current one the hourly job keeps partitions of usage_events and ledger_entries. */
  PARTITION_MONTHS_AHEAD: z.coerce.number().int().min(1).max(24).default(3),
  HOLD_TTL_SECONDS: z.coerce.number().int().min(1).max(86_400).default(300),
  STRIPE_WEBHOOK_SECRET: z.string().startsWith("whsec_").optional(),
  /** The processor API key; unset: nothing can start a card payment (top-ups and card routes answer 503 not_configured). */
  STRIPE_SECRET_KEY: z
    .string()
    .regex(/^(sk|rk)_(test|live)_[A-Za-z0-9_]{8,}$/, "must be a processor secret key (sk_test_…, sk_live_… or rk_…)")
    .optional(),
  /**
   * Where the processor API is; unset: the processor's own (api.stripe.com). Set to the development
   * fake's URL (dev/processor) by `npm run dev` and the tests.
   */
  STRIPE_API_URL: z.url().optional(),
  /** Retries of a processor request that failed on the network or with a retryable status (each keeps its idempotency key). */
  STRIPE_MAX_NETWORK_RETRIES: z.coerce.number().int().min(0).max(5).default(2),
  /** Card top-ups (POST /v1/billing/topups): the smallest and largest amount, USD decimals with at most 2 places. */
  TOPUP_MIN_USD: usdCents.default("5.00"),
  TOPUP_MAX_USD: usdCents.default("10000.00"),
  STRIPE_TIMEOUT_MS: z.coerce.number().int().min(100).max(120_000).default(15_000),
  /** Which processor mode this deployment accepts: a test-mode event must never move real balances. */
  STRIPE_LIVEMODE: bool.default(false),
  /**
   * Webhook endpoints may be http:// and on loopback (localhost, 127.0.0.0/8, ::1): for development and tests
   * only. Off, every target must be https and resolve to public addresses (src/billing/webhooks/targets.ts).
   */
  WEBHOOK_ALLOW_LOCALHOST: bool.default(false),
  /**
   * Where browsers reach this API: billing portal links are made under it (`<PORTAL_URL>/portal/open?token=…`).
   * Unset: the origin of the request that asked for the link.
   */
  PORTAL_URL: z.url().optional(),
  /** The built billing portal pages (`npm run build:portal`, Vite), served under /portal; relative to the working directory. */
  PORTAL_DIR: z.string().min(1).default("dist/portal"),
  /** A delivery attempt that has no answer within this many milliseconds has failed (and is retried). */
  WEBHOOK_TIMEOUT_MS: z.coerce.number().int().min(100).max(60_000).default(10_000),
  /**
   * Referrals (README, "Referrals"): the link an org shares is REFERRAL_LINK_BASE_URL?ref=<code>; a
   * referral pays once the referred org's first paid top-up has stood REFERRAL_HOLD_DAYS; the
   * referrer and the referred org then get these credits (0: that side gets none), which expire
   * after REFERRAL_GRANT_EXPIRES_IN_DAYS; a referrer earns at most REFERRAL_MONTHLY_CAP_USD a
   * calendar month (UTC), a reward past it is recorded as capped.
   */
  REFERRAL_LINK_BASE_URL: z.url().default("https://console.hanzo.ai/signup"),
  REFERRAL_HOLD_DAYS: z.coerce.number().int().min(0).max(365).default(14),
  REFERRAL_REFERRER_CREDIT_USD: usdCents.default("20.00"),
  REFERRAL_REFERRED_CREDIT_USD: usdCents.default("10.00"),
  REFERRAL_MONTHLY_CAP_USD: usdCents.default("200.00"),
  REFERRAL_GRANT_EXPIRES_IN_DAYS: z.coerce.number().int().min(1).max(3650).default(365),
  /** Deliveries in flight per worker process (a slow receiver holds one for up to WEBHOOK_TIMEOUT_MS). */
  WEBHOOK_CONCURRENCY: z.coerce.number().int().min(1).max(2_000).default(500),
});
/** The parsed environment, with the owner's and the indexer's database URLs resolved. */
export type Config = Omit<z.infer<typeof Config>, "DATABASE_OWNER_URL" | "INDEXER_DATABASE_URL"> & {
  DATABASE_OWNER_URL: string;
  INDEXER_DATABASE_URL: string;
};

export class ConfigError extends Error {
  override name = "ConfigError";
  constructor(readonly problems: string[]) {
    super(`Invalid environment:\n${problems.map((p) => `  - ${p}`).join("\n")}`);
  }
}

/** Reads the environment once; names every bad or missing variable at once instead of failing on the first. */
export function loadConfig(env: Record<string, string | undefined> = process.env): Config {
  // An empty variable means "not set", as shells and .env files commonly write it.
  const present = Object.fromEntries(Object.entries(env).filter(([, v]) => v !== undefined && v !== ""));
  const result = Config.safeParse(present);
  if (result.success)
    return {
      ...result.data,
      DATABASE_OWNER_URL: result.data.DATABASE_OWNER_URL ?? withUser(result.data.DATABASE_URL, OWNER_LOGIN),
      INDEXER_DATABASE_URL: result.data.INDEXER_DATABASE_URL ?? withUser(result.data.DATABASE_URL, INDEXER_LOGIN),
    };
  throw new ConfigError(result.error.issues.map((issue) => `${issue.path.join(".")}: ${issue.message}`));
}
