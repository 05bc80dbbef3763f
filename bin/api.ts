import { serve } from "@hono/node-server";
import { systemClock } from "../src/clock.js";
import { KeyCache } from "../src/billing/api-keys.js";
import { Metering } from "../src/billing/metering.js";
import { createChainClient } from "../src/chain/client.js";
import { createSql } from "../src/db/client.js";
import { ReadRouting } from "../src/db/read-routing.js";
import { WritePositions } from "../src/db/write-positions.js";
import { createApp } from "../src/http/app.js";
import { RateLimiter } from "../src/http/middleware/rate-limiter.js";
import { createLogger } from "../src/observability/logger.js";
import { createMetrics } from "../src/observability/metrics.js";
import {
  awaitRedisCluster,
  checkDatabase,
  checkRedis,
  loadConfigOrExit,
  preflightOrExit,
  redactPassword,
} from "../src/ops/preflight.js";
import { createRedisClient } from "../src/ops/redis-client.js";
import { RedisHealth } from "../src/ops/redis-health.js";
import { onShutdown } from "../src/ops/shutdown.js";
import { enqueueAlerts } from "../src/jobs/enqueue.js";
import { createQueues } from "../src/jobs/queues.js";

const config = loadConfigOrExit("api");
// A database that is down, missing or unmigrated, or a Redis that is down: one line naming the
// variable and the fix, exit 1.
await preflightOrExit("api", [checkDatabase(config.DATABASE_URL, { migrated: true }), checkRedis(config.REDIS_URL)]);
// A cluster with a node down is not a reason to exit: say which node, and wait for the cluster.
await awaitRedisCluster("api", config.REDIS_URL);
const logger = createLogger("api", config.LOG_LEVEL);
const sql = createSql(config.DATABASE_URL, { max: config.DATABASE_POOL_MAX, applicationName: "hanzo-api" });
const redis = createRedisClient(config.REDIS_URL);
const redisHealth = new RedisHealth(logger, redactPassword(config.REDIS_URL)).watch(redis);
const queues = createQueues(redis, config.REDIS_PREFIX);
for (const queue of queues.all()) redisHealth.watchErrors(queue, `queue ${queue.name}`);
let draining = false;
const metering = new Metering(sql, {
  logger,
  lanes: config.METERING_LANES,
  maxInFlight: config.METERING_MAX_IN_FLIGHT,
  onCrossings: (crossings) =>
    enqueueAlerts(
      queues,
      crossings.map((c) => c.alertId),
    ),
});
await metering.ready();
// What other replicas change reaches this one: new catalog versions and key revocations (LISTEN).
const stopCatalogWatch = await metering.catalog.watch({ logger });
const keyCache = new KeyCache();
const stopKeyWatch = await keyCache.listen(sql);
const chain = createChainClient(config);
const metrics = createMetrics({
  sql,
  queues,
  indexer: { viewsSchema: config.PONDER_SCHEMA, chain },
  snapshotMs: config.METRICS_SNAPSHOT_SECONDS * 1000,
});
// The read replica, when configured: not checked at start (reads fall back to the primary while it is away).
const replicaSql = config.DATABASE_READ_URL
  ? createSql(config.DATABASE_READ_URL, {
      max: config.DATABASE_POOL_MAX,
      applicationName: "hanzo-api-read",
      connectTimeoutSeconds: 2,
    })
  : undefined;
const reads = replicaSql
  ? new ReadRouting({
      primary: sql,
      replica: replicaSql,
      positions: new WritePositions(redis, config.REDIS_PREFIX),
      logger,
      observer: metrics.readRoutingObserver(),
    })
  : undefined;
if (config.DATABASE_READ_URL) logger.info({ url: redactPassword(config.DATABASE_READ_URL) }, "read replica configured");
const app = createApp({
  sql,
  config,
  clock: systemClock,
  logger,
  metering,
  keyCache,
  metrics,
  queues,
  chain,
  reads,
  rateLimiter: config.RATE_LIMITS_ENABLED ? new RateLimiter(redis, config.REDIS_PREFIX, { logger }) : undefined,
  health: { redisUp: () => redisHealth.up, draining: () => draining },
});

const server = serve({ fetch: app.fetch, hostname: config.HOST, port: config.PORT }, (info) => {
  logger.info({ url: `http://${config.HOST}:${info.port}` }, "api listening");
});

// Stop taking connections, let in-flight requests finish (their commits are what we promised),
// then close the pools.
onShutdown("api", logger, async () => {
  draining = true;
  await new Promise<void>((resolve) => server.close(() => resolve()));
  await Promise.all([stopCatalogWatch(), stopKeyWatch()]);
  await queues.close();
  redis.disconnect();
  await Promise.all([sql.end({ timeout: 5 }), replicaSql?.end({ timeout: 5 })]);
});
