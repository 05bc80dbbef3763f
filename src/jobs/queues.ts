import { Queue, type ConnectionOptions } from "bullmq";
import type { CardChargeJob, DepositJob, LowBalanceAlertJob, MaintenanceJob, WebhookJob } from "./payloads.js";

/** The queues, by name: the API enqueues, the workers (src/workers) process. */
export const QueueNames = {
  lowBalanceAlerts: "low-balance-alerts",
  deposits: "husd-deposits",
  maintenance: "maintenance",
  cardCharges: "card-charges",
  webhooks: "webhooks",
} as const;

/** BullMQ's prefix, hash-tagged so that every key of a queue lands on one Redis Cluster slot. */
export const bullPrefix = (prefix: string) => `{${prefix}}`;

export function createQueues(connection: ConnectionOptions, prefix: string) {
  const opts = { connection, prefix: bullPrefix(prefix) };
  return {
    lowBalanceAlerts: new Queue<LowBalanceAlertJob>(QueueNames.lowBalanceAlerts, opts),
    deposits: new Queue<DepositJob>(QueueNames.deposits, opts),
    maintenance: new Queue<MaintenanceJob>(QueueNames.maintenance, opts),
    cardCharges: new Queue<CardChargeJob>(QueueNames.cardCharges, opts),
    webhooks: new Queue<WebhookJob>(QueueNames.webhooks, opts),
    all(): Queue[] {
      return [this.lowBalanceAlerts, this.deposits, this.maintenance, this.cardCharges, this.webhooks] as Queue[];
    },
    async close() {
      await Promise.all(this.all().map((q) => q.close()));
    },
  };
}
export type Queues = ReturnType<typeof createQueues>;
