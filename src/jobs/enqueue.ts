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
