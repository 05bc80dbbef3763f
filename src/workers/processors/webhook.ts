import type { BillingContext } from "../../billing/context.js";
import {
  attemptDelivery,
  fanOutEvent,
  type AttemptOutcome,
  type DeliveryOptions,
} from "../../billing/webhooks/deliver.js";
import { enqueueDeliveries } from "../../jobs/enqueue.js";
import { WebhookJob } from "../../jobs/payloads.js";
import type { Queues } from "../../jobs/queues.js";

/**
 * A `webhooks` job. "fan-out": make the event's deliveries and enqueue their first attempts.
 * "deliver": make the delivery's next attempt; after a failure, enqueue the one after at its time
 * (the sweep would find it too).
 */
export async function processWebhookJob(
  ctx: BillingContext & { queues: Queues },
  data: unknown,
  opts: DeliveryOptions,
): Promise<{ deliveries: number } | AttemptOutcome> {
  const job = WebhookJob.parse(data);
  if ("event_id" in job) {
    const ids = await fanOutEvent(ctx, { eventId: job.event_id });
    await enqueueDeliveries(
      ctx.queues,
      ids.map((id) => ({ id, attempts: 0 })),
    );
    return { deliveries: ids.length };
  }
  const outcome = await attemptDelivery(ctx, { deliveryId: job.delivery_id }, opts);
  if (outcome.outcome === "retry")
    await enqueueDeliveries(
      ctx.queues,
      [{ id: job.delivery_id, attempts: outcome.attempt, at: outcome.nextAttemptAt }],
      ctx.clock(),
    );
  return outcome;
}
