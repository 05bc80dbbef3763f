import { systemClock } from "../src/clock.js";
import { createSql } from "../src/db/client.js";
import { createLogger } from "../src/observability/logger.js";
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
import { startWorkers } from "../src/workers/start-workers.js";

const config = loadConfigOrExit("worker");
await preflightOrExit("worker", [checkDatabase(config.DATABASE_URL, { migrated: true }), checkRedis(config.REDIS_URL)]);
// A cluster with a node down is not a reason to exit: say which node, and wait for the cluster.
await awaitRedisCluster("worker", config.REDIS_URL);
const logger = createLogger("worker", config.LOG_LEVEL);
const sql = createSql(config.DATABASE_URL, { max: config.DATABASE_POOL_MAX, applicationName: "hanzo-worker" });
// BullMQ blocks on its connection, so workers need maxRetriesPerRequest: null.
const connection = createRedisClient(config.REDIS_URL);
const redisHealth = new RedisHealth(logger, redactPassword(config.REDIS_URL)).watch(connection);
const workers = await startWorkers({
  sql,
  connection,
  prefix: config.REDIS_PREFIX,
  logger,
  clock: systemClock,
  config,
  redisHealth,
});

// Lets running jobs finish; an interrupted one is retried by BullMQ and re-decided in PostgreSQL.
onShutdown(
  "worker",
  logger,
  async () => {
    await workers.close();
    connection.disconnect();
    await sql.end({ timeout: 5 });
  },
  15_000,
);
