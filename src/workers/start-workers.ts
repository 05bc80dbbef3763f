import { Worker, type ConnectionOptions, type Job } from "bullmq";
import type { Logger } from "pino";
import { createBillingContext } from "../billing/context.js";
import type { DepositContext } from "../billing/deposits/context.js";
import { createChainClient, type ChainClient } from "../chain/client.js";
import { withRedactedErrors } from "../chain/redact.js";
import type { Clock } from "../clock.js";
import type { Config } from "../config.js";
import type { Sql } from "../db/client.js";
import { isConnectionError, type RedisHealth } from "../ops/redis-health.js";
import type { Processor } from "../billing/auto-topup/card-charge.js";
import { processorClient } from "../billing/payments/processor-client.js";
import { dnsResolver, type Resolver } from "../billing/webhooks/targets.js";
import { enqueueAlerts, enqueueCardCharges, enqueueFanOuts } from "../jobs/enqueue.js";
import { MaintenanceTasks, type MaintenanceJob } from "../jobs/payloads.js";
import { bullPrefix, createQueues, QueueNames, type Queues } from "../jobs/queues.js";
import { processCardCharge } from "./processors/card-charge.js";
import { checkDeposit } from "./processors/deposit-check.js";
import { processLowBalanceAlert } from "./processors/low-balance-alert.js";
import { runMaintenance } from "./processors/maintenance.js";
import { processWebhookJob } from "./processors/webhook.js";

export type WorkerDeps = {
  sql: Sql;
  connection: ConnectionOptions;
  prefix: string;
  logger: Logger;
  clock: Clock;
  config: Config;
  maintenanceEveryMs?: number;
  chain?: ChainClient;
  /** Optional: Redis connection errors of the queues and workers are told once per outage (bin/worker.ts). */
  redisHealth?: RedisHealth;
  /**
   * The card processor's client, for the charges we start (auto top-up, renewals). Default: made
   * from the config (STRIPE_SECRET_KEY, STRIPE_API_URL); none without a key (charges are skipped).
   */
  processor?: Processor | null;
  /** How webhook targets' host names are resolved (tests map names to addresses of their choosing); DNS otherwise. */
  resolve?: Resolver;
  /** How often the maintenance job schedulers are declared again (default 10 s; see `ensureSchedulers`). */
  schedulersEveryMs?: number;
};

/** How often a worker process declares the maintenance job schedulers again, by default. */
export const SCHEDULERS_EVERY_MS = 10_000;

/**
 * Starts every queue processor of this process. Any number of worker processes may run: each
 * job's effect is decided by a conditional write in PostgreSQL, never by which worker got it.
 */
export async function startWorkers(deps: WorkerDeps) {
  const queues = createQueues(deps.connection, deps.prefix);
  const chain = deps.chain ?? createChainClient(deps.config);
  const ctx: DepositContext & { queues: Queues } = {
    ...createBillingContext({ sql: deps.sql, clock: deps.clock, logger: deps.logger, queues }),
    sql: deps.sql,
    chain,
    config: deps.config,
    queues,
  };
  const opts = { connection: deps.connection, prefix: bullPrefix(deps.prefix) };
  const every = deps.maintenanceEveryMs ?? 5_000;
  const scanEveryMs = Math.min(every, deps.config.DEPOSIT_SCAN_INTERVAL_MS);

  const alerts = new Worker(
    QueueNames.lowBalanceAlerts,
    withRedactedErrors(async (job: Job) => processLowBalanceAlert(ctx, job.data)),
    { ...opts, concurrency: 8 },
  );

  const deposits = new Worker(
    QueueNames.deposits,
    // A failure's message and stack are kept in Redis (and shown by the dashboard): without the RPC URL.
    withRedactedErrors(async (job: Job) => checkDeposit(ctx, job.data)),
    // A check takes milliseconds; short locks mean a job held by a killed worker is taken over
    // within seconds (the credit itself is decided in PostgreSQL, so a re-run is harmless). The
    // limiter is BullMQ's, counted in Redis for the queue: every worker process together starts at
    // most DEPOSIT_CHECKS_PER_SECOND checks a second (retries included), whoever enqueued them.
    {
      ...opts,
      concurrency: 8,
      lockDuration: 10_000,
      stalledInterval: 5_000,
      limiter: { max: deps.config.DEPOSIT_CHECKS_PER_SECOND, duration: 1_000 },
    },
  );

  const processor =
    deps.processor !== undefined ? deps.processor : deps.config.STRIPE_SECRET_KEY ? processorClient(deps.config) : null;
  const cardCharges = new Worker(
    QueueNames.cardCharges,
    withRedactedErrors(async (job: Job) => processCardCharge(ctx, processor, job.data)),
    { ...opts, concurrency: 4 },
  );

  // Webhook deliveries have their own queue and concurrency: a slow receiver holds a slot for up
  // to WEBHOOK_TIMEOUT_MS, and must not hold back deposits, charges or sweeps.
  const deliveryOptions = {
    allowLocalhost: deps.config.WEBHOOK_ALLOW_LOCALHOST,
    timeoutMs: deps.config.WEBHOOK_TIMEOUT_MS,
    resolve: deps.resolve ?? dnsResolver,
  };
  const webhooks = new Worker(
    QueueNames.webhooks,
    async (job: Job) => processWebhookJob(ctx, job.data, deliveryOptions),
    { ...opts, concurrency: deps.config.WEBHOOK_CONCURRENCY },
  );

  const maintenance = new Worker<MaintenanceJob>(
    QueueNames.maintenance,
    withRedactedErrors(async (job: Job<MaintenanceJob>) => runMaintenance(ctx, job.data, { scanEveryMs })),
    // Two at a time: the ledger check reads the whole ledger (seconds on a large one) and must not
    // hold back the 5 s sweeps behind it. Every task is safe to run beside any other, as it is
    // across worker processes.
    { ...opts, concurrency: 2 },
  );

  // Job schedulers are upserted by id, so every replica may declare them; Redis keeps one each.
  const ensureSchedulers = async () => {
    for (const task of MaintenanceTasks) {
      // Cycles end at most once a day per anchor; once a minute is prompt enough and cheap.
      const interval =
        task === "close-cycles"
          ? Math.max(every, 60_000)
          : task === "scan-deposits"
            ? scanEveryMs
            : task === "check-ledger"
              ? deps.config.LEDGER_CHECK_INTERVAL_MS
              : task === "ensure-partitions"
                ? // Months are made PARTITION_MONTHS_AHEAD ahead (the migration made the first
                  // ones): hourly is plenty.
                  Math.max(every, 3_600_000)
                : every;
      await queues.maintenance.upsertJobScheduler(
        task,
        { every: interval },
        { name: task, data: { task }, opts: { removeOnComplete: 100, removeOnFail: 100 } },
      );
    }
  };
  await ensureSchedulers();
  // And again, every few seconds, for as long as the process runs. A scheduler lives in Redis as
  // its next iteration's delayed job, and a worker adds the one after when it takes that one: lose
  // that job (a Redis Cluster master killed before its replica got its last writes, a flushed or
  // restored Redis) and the task never runs again, and with it the sweeps that find every other
  // lost job. Declaring an existing scheduler again keeps its next iteration (same time, same job
  // id); a missing one is made anew.
  let declaring = false;
  const redeclare = setInterval(() => {
    if (declaring) return; // a declaration still waiting for Redis (down, failing over)
    declaring = true;
    ensureSchedulers()
      .catch((err: unknown) => {
        // Redis being away is told by RedisHealth (or the queue's error event); anything else here.
        if (!isConnectionError(err)) deps.logger.error({ err }, "could not declare the maintenance job schedulers");
      })
      .finally(() => {
        declaring = false;
      });
  }, deps.schedulersEveryMs ?? SCHEDULERS_EVERY_MS);
  redeclare.unref();

  for (const w of [alerts, deposits, maintenance, cardCharges, webhooks]) {
    w.on("failed", (job, err) => deps.logger.error({ queue: w.name, job_id: job?.id, err }, "job failed"));
    if (deps.redisHealth) deps.redisHealth.watchErrors(w, `worker ${w.name}`);
    else w.on("error", (err) => deps.logger.error({ queue: w.name, err }, "worker error"));
  }
  // A queue without an error listener prints every reconnection failure to the console.
  for (const q of queues.all()) {
    if (deps.redisHealth) deps.redisHealth.watchErrors(q, `queue ${q.name}`);
    else q.on("error", (err) => deps.logger.error({ queue: q.name, err }, "queue error"));
  }
  // Every new low-balance alert, as its transaction commits (balance_alerts_notify): its delivery is
  // enqueued at once instead of at the next sweep. The job id is the alert id, so the API's own
  // enqueue of usage alerts and this one make one job.
  const alertNotices = await deps.sql.listen("balance_alerts", (alertId) => {
    enqueueAlerts(queues, [alertId]).catch((err: unknown) =>
      deps.logger.warn({ err, alert_id: alertId }, "could not enqueue a low-balance alert; the sweep will"),
    );
  });
  // Every new auto top-up crossing, as its debit commits (auto_topup_crossings_notify); the
  // card-charges sweep catches one nobody heard.
  const crossingNotices = await deps.sql.listen("auto_topup_crossings", (crossingId) => {
    enqueueCardCharges(queues, [{ kind: "crossing", id: crossingId }]).catch((err: unknown) =>
      deps.logger.warn({ err, crossing_id: crossingId }, "could not enqueue an auto top-up crossing; the sweep will"),
    );
  });
  // Every new event, as its transaction commits (billing_events_notify): its fan-out is enqueued at
  // once; the sweep-webhooks task finds any whose notice nobody heard.
  const eventNotices = await deps.sql.listen("billing_events", (eventId) => {
    enqueueFanOuts(queues, [eventId]).catch((err: unknown) =>
      deps.logger.warn({ err, event_id: eventId }, "could not enqueue an event's fan-out; the sweep will"),
    );
  });
  deps.logger.info({ queues: Object.values(QueueNames) }, "workers started");

  return {
    queues,
    async close() {
      clearInterval(redeclare);
      await alertNotices.unlisten();
      await crossingNotices.unlisten();
      await eventNotices.unlisten();
      await Promise.all([alerts.close(), deposits.close(), maintenance.close(), cardCharges.close(), webhooks.close()]);
      await queues.close();
    },
  };
}
