import type { CardChargeJob } from "./payloads.js";
import type { Queues } from "./queues.js";

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

/**
 * Asks a worker to take a card charge's next step. The job id is the kind and the row's id, and
 * finished jobs are removed: while one is pending a re-enqueue is a no-op, afterwards a fresh look.
 * Retries ask the processor again with the same idempotency key.
 */
export async function enqueueCardCharges(queues: Queues, jobs: CardChargeJob[]): Promise<void> {
  if (jobs.length === 0) return;
  await queues.cardCharges.addBulk(
    jobs.map((data) => ({
      name: data.kind,
      data,
      opts: {
        jobId: `${data.kind}-${data.id}`,
        removeOnComplete: true,
        removeOnFail: true,
        attempts: 5,
        backoff: { type: "exponential", delay: 1000 },
      },
    })),
  );
}

/**
 * Asks a worker to make these events' deliveries (once per event: the job id while pending, the
 * fan-out mark in PostgreSQL always). A job that used up its attempts is removed: kept in the
 * failed set under its id, it would make the sweep's add of the same id do nothing, for good.
 */
export async function enqueueFanOuts(queues: Queues, eventIds: string[]): Promise<void> {
  if (eventIds.length === 0) return;
  await queues.webhooks.addBulk(
    eventIds.map((id) => ({
      name: "fan-out",
      data: { event_id: id },
      opts: {
        jobId: `fan-${id}`,
        removeOnComplete: true,
        removeOnFail: true,
        attempts: 5,
        backoff: { type: "exponential", delay: 1000 },
      },
    })),
  );
}

/**
 * Asks a worker to make a delivery's next attempt, at `at` (now when absent). The job id names the
 * delivery and how many attempts it had, so the sweep and the worker that scheduled the retry make
 * one job; which attempt is sent, and that it is sent once, is decided in PostgreSQL. A job that
 * failed is removed, so that the sweep's add of its id, once its claim lapses, makes it again.
 */
export async function enqueueDeliveries(
  queues: Queues,
  deliveries: { id: string; attempts: number; at?: Date; tag?: string }[],
  now: Date = new Date(),
): Promise<void> {
  if (deliveries.length === 0) return;
  await queues.webhooks.addBulk(
    deliveries.map((d) => ({
      name: "deliver",
      data: { delivery_id: d.id },
      opts: {
        // A tag makes another job beside one already waiting for the same attempt (a retry asked now).
        jobId: d.tag ? `${d.id}-${d.attempts}-${d.tag}` : `${d.id}-${d.attempts}`,
        delay: d.at ? Math.max(0, d.at.getTime() - now.getTime()) : 0,
        removeOnComplete: true,
        removeOnFail: true,
      },
    })),
  );
}
