import { Webhook } from "standardwebhooks";
import { newId } from "../../ids.js";
import { withTransaction, type BillingContext } from "../context.js";
import { emitEvent } from "../events/emit.js";
import { eventEnvelope } from "../events/list-events.js";
import { DISABLE_AFTER_FAILING_MS, MAX_ATTEMPTS, retryDelayMs } from "./schedule.js";
import { sendWebhook, type SendResult } from "./send.js";
import { resolveTarget, TargetRefused, type Resolver, type TargetPolicy } from "./targets.js";

/** What delivering needs beyond the context: the target rules, DNS (a test injects its own), the timeout. */
export type DeliveryOptions = TargetPolicy & { resolve: Resolver; timeoutMs: number };

/**
 * A claimed attempt stays claimed for the send's timeout (the host's lookup and the answer both
 * within it) and this much more, for recording the attempt: only a dead worker's claim lapses.
 */
const CLAIM_MARGIN_MS = 30_000;

/**
 * Makes the deliveries of an event: one per enabled endpoint of its org that wants its type, as
 * the endpoints stand now. Once per event (the fan-out mark is set in the same transaction); a
 * second call returns nothing. Returns the new deliveries' ids.
 */
export async function fanOutEvent(ctx: BillingContext, input: { eventId: string }): Promise<string[]> {
  const now = ctx.clock();
  return withTransaction(ctx, async (tx) => {
    const [event] = await tx.sql<{ id: string; org_id: string; type: string }[]>`
      update billing_events set fanned_out_at = ${now} where id = ${input.eventId} and fanned_out_at is null
      returning id, org_id, type`;
    if (!event) return [];
    const endpoints = await tx.sql<{ id: string }[]>`
      select id from webhook_endpoints
      where org_id = ${event.org_id} and enabled and deleted_at is null
        and (cardinality(events) = 0 or ${event.type} = any (events))
      order by id`;
    if (endpoints.length === 0) return [];
    const rows = endpoints.map((e) => ({
      id: newId("dlv"),
      event_id: event.id,
      endpoint_id: e.id,
      org_id: event.org_id,
      status: "pending",
      next_attempt_at: now,
      created_at: now,
    }));
    const made = await tx.sql<{ id: string }[]>`
      insert into webhook_deliveries ${tx.sql(rows)} on conflict (endpoint_id, event_id) do nothing returning id`;
    return made.map((r) => r.id);
  });
}

/** Events whose fan-out has not happened (its job lost, or no worker heard the notice). */
export async function unfannedEvents(ctx: BillingContext, input: { limit?: number } = {}): Promise<string[]> {
  const rows = await ctx.sql<{ id: string }[]>`
    select id from billing_events where fanned_out_at is null order by seq limit ${input.limit ?? 1000}`;
  return rows.map((r) => r.id);
}

/** Deliveries with an attempt due now and not claimed by a live worker, with their attempts so far. */
export async function dueDeliveries(
  ctx: BillingContext,
  input: { limit?: number } = {},
): Promise<{ id: string; attempts: number }[]> {
  const now = ctx.clock();
  return ctx.sql<{ id: string; attempts: number }[]>`
    select id, attempts from webhook_deliveries
    where status = 'pending' and next_attempt_at <= ${now} and (claimed_until is null or claimed_until < ${now})
    order by next_attempt_at limit ${input.limit ?? 1000}`;
}

export type AttemptOutcome =
  | { outcome: "not_due" }
  | { outcome: "delivered"; attempt: number; statusCode: number | null }
  | { outcome: "retry"; attempt: number; nextAttemptAt: Date; error: string }
  | { outcome: "failed"; attempt: number; error: string };

type Claimed = {
  id: string;
  attempts: number;
  event_id: string;
  event_type: string;
  event_data: Record<string, unknown>;
  event_created_at: Date;
  endpoint_id: string;
  org_id: string;
  url: string;
  enabled: boolean;
  deleted_at: Date | null;
  secret: string;
  previous_secret: string | null;
  previous_secret_expires_at: Date | null;
};

/**
 * Makes the next attempt of a delivery, if one is due: claims it in PostgreSQL (so of two workers
 * with the same job, one sends and the other finds nothing to do), signs the event per Standard
 * Webhooks (`webhook-id` is the event id, the same on every attempt: receivers dedupe on it), sends
 * it to the address its host resolved to, and records the attempt and what follows from it: done,
 * the next attempt's time (RETRY_DELAYS_MS), or failed. An endpoint whose deliveries have failed for
 * five days with no success between is disabled, and its org gets `webhook_endpoint.disabled`.
 */
export async function attemptDelivery(
  ctx: BillingContext,
  input: { deliveryId: string },
  opts: DeliveryOptions,
): Promise<AttemptOutcome> {
  const now = ctx.clock();
  const [claimed] = await ctx.sql<Claimed[]>`
    with c as (
      update webhook_deliveries set claimed_until = ${new Date(now.getTime() + opts.timeoutMs + CLAIM_MARGIN_MS)}
      where id = ${input.deliveryId} and status = 'pending' and next_attempt_at <= ${now}
        and (claimed_until is null or claimed_until < ${now})
      returning id, attempts, event_id, endpoint_id, org_id
    )
    select c.id, c.attempts, c.event_id, c.endpoint_id, c.org_id, e.type as event_type, e.data as event_data,
           e.created_at as event_created_at, w.url, w.enabled, w.deleted_at, w.secret, w.previous_secret,
           w.previous_secret_expires_at
    from c join billing_events e on e.id = c.event_id join webhook_endpoints w on w.id = c.endpoint_id`;
  if (!claimed) return { outcome: "not_due" };
  const attempt = claimed.attempts + 1;
  const isTest = claimed.event_type === "test.ping";

  let result: SendResult;
  if (claimed.deleted_at || (!claimed.enabled && !isTest)) {
    // Nothing is sent to an endpoint that was deleted or disabled meanwhile.
    return finish(ctx, claimed, attempt, now, null, {
      statusCode: null,
      error: "endpoint disabled or deleted",
      excerpt: null,
      ok: false,
    });
  }
  const body = JSON.stringify(
    eventEnvelope({
      id: claimed.event_id,
      type: claimed.event_type,
      data: claimed.event_data,
      createdAt: claimed.event_created_at,
    }),
  );
  const signatures = [new Webhook(claimed.secret).sign(claimed.event_id, now, body)];
  if (claimed.previous_secret && claimed.previous_secret_expires_at && claimed.previous_secret_expires_at > now)
    signatures.push(new Webhook(claimed.previous_secret).sign(claimed.event_id, now, body));
  const started = Date.now();
  try {
    const url = new URL(claimed.url);
    // The lookup counts against the timeout, so the whole send ends within the claim.
    const address = await resolveTarget(url, opts, (host) => withinMs(opts.resolve(host), opts.timeoutMs));
    result = await sendWebhook({
      url,
      address,
      body,
      timeoutMs: Math.max(1, opts.timeoutMs - (Date.now() - started)),
      headers: {
        "content-type": "application/json",
        "user-agent": "Hanzo-Webhooks/1.0",
        "webhook-id": claimed.event_id,
        "webhook-timestamp": Math.floor(now.getTime() / 1000).toString(),
        "webhook-signature": signatures.join(" "),
      },
    });
  } catch (err) {
    if (!(err instanceof TargetRefused)) throw err;
    result = { statusCode: null, error: `target refused: ${err.message}`, excerpt: null, ok: false };
  }
  return finish(ctx, claimed, attempt, now, Date.now() - started, result);
}

async function finish(
  ctx: BillingContext,
  claimed: Claimed,
  attempt: number,
  now: Date,
  durationMs: number | null,
  result: SendResult,
): Promise<AttemptOutcome> {
  return withTransaction(ctx, async (tx) => {
    const { sql } = tx;
    await sql`insert into webhook_attempts (delivery_id, attempt, status_code, error, response_excerpt, started_at, duration_ms)
              values (${claimed.id}, ${attempt}, ${result.statusCode}, ${result.error}, ${result.excerpt}, ${now}, ${durationMs ?? 0})`;
    if (result.ok) {
      await sql`update webhook_deliveries set status = 'delivered', attempts = ${attempt}, delivered_at = ${now},
                  next_attempt_at = null, claimed_until = null, last_status_code = ${result.statusCode}, last_error = null
                where id = ${claimed.id}`;
      await sql`update webhook_endpoints set failing_since = null where id = ${claimed.endpoint_id} and failing_since is not null`;
      return { outcome: "delivered", attempt, statusCode: result.statusCode };
    }
    const error = result.error ?? "failed";
    // No retry to an endpoint deleted or disabled meanwhile, nor of a test.ping: a ping is a check
    // the customer asked for (its answer is in the deliveries list, and it can be retried by hand),
    // and retried on its own it would turn each ping at someone else's URL into ten requests.
    const retries = !claimed.deleted_at && claimed.enabled && claimed.event_type !== "test.ping";
    const delay = retries ? retryDelayMs(attempt) : null;
    const next = delay === null || attempt >= MAX_ATTEMPTS ? null : new Date(now.getTime() + delay);
    await sql`update webhook_deliveries set status = ${next ? "pending" : "failed"}, attempts = ${attempt},
                next_attempt_at = ${next}, claimed_until = null, last_status_code = ${result.statusCode}, last_error = ${error}
              where id = ${claimed.id}`;
    if (!claimed.deleted_at && claimed.enabled) await noteFailure(tx.sql, claimed, now);
    return next ? { outcome: "retry", attempt, nextAttemptAt: next, error } : { outcome: "failed", attempt, error };
  });
}

async function noteFailure(sql: Parameters<typeof emitEvent>[0], claimed: Claimed, now: Date): Promise<void> {
  const [endpoint] = await sql<{ failing_since: Date; url: string }[]>`
    update webhook_endpoints set failing_since = coalesce(failing_since, ${now})
    where id = ${claimed.endpoint_id} and enabled and deleted_at is null
    returning failing_since, url`;
  if (!endpoint || now.getTime() - endpoint.failing_since.getTime() < DISABLE_AFTER_FAILING_MS) return;
  const [disabled] = await sql`
    update webhook_endpoints set enabled = false, disabled_reason = 'failing for five days', updated_at = ${now}
    where id = ${claimed.endpoint_id} and enabled returning id`;
  if (!disabled) return;
  await emitEvent(sql, {
    orgId: claimed.org_id,
    type: "webhook_endpoint.disabled",
    factKey: `${claimed.endpoint_id}:${endpoint.failing_since.toISOString()}`,
    data: { webhook_id: claimed.endpoint_id, url: endpoint.url, failing_since: endpoint.failing_since.toISOString() },
    at: now,
  });
}

/** A promise's answer, or a rejection once `ms` have passed without one. */
function withinMs<T>(promise: Promise<T>, ms: number): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`no answer within ${ms} ms`)), ms);
  });
  return Promise.race([promise, late]).finally(() => clearTimeout(timer));
}
