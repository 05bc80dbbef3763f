import { Queue, type ConnectionOptions } from "bullmq";
import { z } from "zod";

/**
 * Queue names and payloads. A job is only a nudge: the state it acts on lives in PostgreSQL and
 * every processor re-reads it, so a lost job is re-created by a sweep and a duplicate is harmless.
 */
export const QueueNames = {
  lowBalanceAlerts: "low-balance-alerts",
  maintenance: "maintenance",
} as const;

export const LowBalanceAlertJob = z.object({ alert_id: z.string() });
export type LowBalanceAlertJob = z.infer<typeof LowBalanceAlertJob>;

export const MaintenanceTasks = ["expire-holds", "expire-grants", "resend-alerts", "close-cycles"] as const;
export type MaintenanceTask = (typeof MaintenanceTasks)[number];

/** BullMQ's prefix, hash-tagged so that every key of a queue lands on one Redis Cluster slot. */
export const bullPrefix = (prefix: string) => `{${prefix}}`;

export function createQueues(connection: ConnectionOptions, prefix: string) {
  const opts = { connection, prefix: bullPrefix(prefix) };
  return {
    lowBalanceAlerts: new Queue<LowBalanceAlertJob>(QueueNames.lowBalanceAlerts, opts),
    maintenance: new Queue<{ task: MaintenanceTask }>(QueueNames.maintenance, opts),
    all(): Queue[] {
      return [this.lowBalanceAlerts, this.maintenance] as Queue[];
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
    alertIds.map((id) => ({ name: "deliver", data: { alert_id: id }, opts: { jobId: id, removeOnComplete: 1000, removeOnFail: 5000, attempts: 10, backoff: { type: "exponential", delay: 1000 } } })),
  );
}
