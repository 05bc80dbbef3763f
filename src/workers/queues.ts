import { Queue, type ConnectionOptions } from "bullmq";
import { z } from "zod";

/**
 * Queue names and payloads. A job is only a nudge: the state it acts on lives in PostgreSQL and
 * every processor re-reads it, so a lost job is re-created by a sweep and a duplicate is harmless.
 */
export const QueueNames = {
  lowBalanceAlerts: "low-balance-alerts",
  deposits: "husd-deposits",
  maintenance: "maintenance",
} as const;

export const DepositJob = z.object({ deposit_id: z.string() });
export type DepositJob = z.infer<typeof DepositJob>;

export const LowBalanceAlertJob = z.object({ alert_id: z.string() });
export type LowBalanceAlertJob = z.infer<typeof LowBalanceAlertJob>;

export const MaintenanceTasks = [
  "expire-holds",
  "expire-grants",
  "resend-alerts",
  "close-cycles",
  "scan-deposits",
  "audit-deposits",
  "check-ledger",
] as const;
export type MaintenanceTask = (typeof MaintenanceTasks)[number];

/** BullMQ's prefix, hash-tagged so that every key of a queue lands on one Redis Cluster slot. */
export const bullPrefix = (prefix: string) => `{${prefix}}`;

export function createQueues(connection: ConnectionOptions, prefix: string) {
  const opts = { connection, prefix: bullPrefix(prefix) };
  return {
    lowBalanceAlerts: new Queue<LowBalanceAlertJob>(QueueNames.lowBalanceAlerts, opts),
    deposits: new Queue<DepositJob>(QueueNames.deposits, opts),
    maintenance: new Queue<{ task: MaintenanceTask }>(QueueNames.maintenance, opts),
    all(): Queue[] {
      return [this.lowBalanceAlerts, this.deposits, this.maintenance] as Queue[];
    },
    async close() {
      await Promise.all(this.all().map((q) => q.close()));
    },
  };
}
export type Queues = ReturnType<typeof createQueues>;

/** Enqueues alert deliveries; the job id is the alert id, so a re-send by the sweeper is a no-op while one is pending. */
export async function enqueueAlerts(queues: Queues, alertIds: string[]): Promise<void> {
  if (alertIds.length === 0) return;
  await queues.lowBalanceAlerts.addBulk(
    alertIds.map((id) => ({
      name: "deliver",
      data: { alert_id: id },
      opts: {
        jobId: id,
        removeOnComplete: 1000,
        removeOnFail: 5000,
        attempts: 10,
        backoff: { type: "exponential", delay: 1000 },
      },
    })),
  );
}

/**
 * Re-sends alerts that PostgreSQL says are undelivered. A job that used up its attempts stays in
 * the failed set under the alert's id, where adding it again does nothing: it is retried instead.
 */
export async function resendAlerts(queues: Queues, alertIds: string[]): Promise<void> {
  for (const id of alertIds) {
    const job = await queues.lowBalanceAlerts.getJob(id);
    if (job && (await job.isFailed())) await job.retry("failed");
  }
  await enqueueAlerts(queues, alertIds);
}

/**
 * Asks a worker to decide these deposits. The job id is the deposit id and finished jobs are
 * removed, so while one is pending a re-enqueue is a no-op and afterwards it is a fresh look.
 */
export async function enqueueDepositChecks(queues: Queues, depositIds: string[]): Promise<void> {
  if (depositIds.length === 0) return;
  await queues.deposits.addBulk(
    depositIds.map((id) => ({
      name: "verify",
      data: { deposit_id: id },
      opts: {
        jobId: `verify-${id}`,
        removeOnComplete: true,
        removeOnFail: true,
        attempts: 3,
        backoff: { type: "fixed", delay: 500 },
      },
    })),
  );
}
