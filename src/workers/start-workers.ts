import { Worker, type ConnectionOptions } from "bullmq";
import type { Logger } from "pino";
import { Catalog } from "../billing/catalog.js";
import { expireGrants } from "../billing/grants.js";
import { closeDueCycles } from "../billing/invoices.js";
import { releaseExpiredHolds } from "../billing/holds.js";
import type { Clock } from "../clock.js";
import type { Config } from "../config.js";
import type { Sql } from "../db/client.js";
import { deliverLowBalanceAlert, undeliveredAlerts } from "./processors/low-balance-alert.js";
import { bullPrefix, createQueues, enqueueAlerts, LowBalanceAlertJob, MaintenanceTasks, QueueNames, type MaintenanceTask } from "./queues.js";

export type WorkerDeps = { sql: Sql; connection: ConnectionOptions; prefix: string; logger: Logger; clock: Clock; config: Config; maintenanceEveryMs?: number };

/**
 * Starts every queue processor of this process. Any number of worker processes may run: each
 * job's effect is decided by a conditional write in PostgreSQL, never by which worker got it.
 */
export async function startWorkers(deps: WorkerDeps) {
  const queues = createQueues(deps.connection, deps.prefix);
  const catalog = new Catalog(deps.sql);
  const opts = { connection: deps.connection, prefix: bullPrefix(deps.prefix) };

  const alerts = new Worker(
    QueueNames.lowBalanceAlerts,
    async (job) => deliverLowBalanceAlert({ sql: deps.sql, logger: deps.logger, now: deps.clock }, LowBalanceAlertJob.parse(job.data).alert_id),
    { ...opts, concurrency: 8 },
  );

  const maintenance = new Worker<{ task: MaintenanceTask }>(
    QueueNames.maintenance,
    async (job) => {
      const now = deps.clock();
      switch (job.data.task) {
        case "expire-holds":
          return { released: await releaseExpiredHolds(deps.sql, now) };
        case "expire-grants":
          return { expired: await expireGrants(deps.sql, now) };
        case "close-cycles":
          return closeDueCycles(deps.sql, catalog, now);
        case "resend-alerts": {
          const ids = await undeliveredAlerts(deps.sql, new Date(now.getTime() - 30_000));
          await enqueueAlerts(queues, ids);
          return { resent: ids.length };
        }
      }
    },
    { ...opts, concurrency: 1 },
  );

  // Job schedulers are upserted by id, so every replica may declare them; Redis keeps one each.
  const every = deps.maintenanceEveryMs ?? 5_000;
  for (const task of MaintenanceTasks) {
    // Cycles end at most once a day per anchor; once a minute is prompt enough and cheap.
    const interval = task === "close-cycles" ? Math.max(every, 60_000) : every;
    await queues.maintenance.upsertJobScheduler(task, { every: interval }, { name: task, data: { task }, opts: { removeOnComplete: 100, removeOnFail: 100 } });
  }

  for (const w of [alerts, maintenance]) {
    w.on("failed", (job, err) => deps.logger.error({ queue: w.name, job_id: job?.id, err }, "job failed"));
    w.on("error", (err) => deps.logger.error({ queue: w.name, err }, "worker error"));
  }
  deps.logger.info({ queues: [QueueNames.lowBalanceAlerts, QueueNames.maintenance] }, "workers started");

  return {
    queues,
    async close() {
      await Promise.all([alerts.close(), maintenance.close()]);
      await queues.close();
    },
  };
}
