import { Redis } from "ioredis";
import { systemClock } from "../src/clock.js";
import { loadConfig } from "../src/config.js";
import { createSql } from "../src/db/client.js";
import { createLogger } from "../src/observability/logger.js";
import { onShutdown } from "../src/ops/shutdown.js";
import { startWorkers } from "../src/workers/start-workers.js";

const config = loadConfig();
const logger = createLogger("worker", config.LOG_LEVEL);
const sql = createSql(config.DATABASE_URL, { max: config.DATABASE_POOL_MAX, applicationName: "hanzo-worker" });
// BullMQ blocks on its connection, so workers need maxRetriesPerRequest: null.
const connection = new Redis(config.REDIS_URL, { maxRetriesPerRequest: null });
const workers = await startWorkers({
  sql,
  connection,
  prefix: config.REDIS_PREFIX,
  logger,
  clock: systemClock,
  config,
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
