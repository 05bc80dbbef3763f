import { randomBytes } from "node:crypto";
import { BillingError } from "../../errors.js";
import { newId } from "../../ids.js";
import { withTransaction, type BillingContext } from "../context.js";
import type { EventType } from "../events/catalog.js";
import { emitEvent } from "../events/emit.js";
import { checkWebhookUrl, type TargetPolicy } from "./targets.js";

/** After a rotation the old secret keeps signing (a second signature) for this long. */
export const PREVIOUS_SECRET_VALID_MS = 24 * 3_600_000;
/** Endpoints an organization may have (not counting deleted ones). */
export const MAX_ENDPOINTS_PER_ORG = 20;

export type WebhookEndpoint = {
  id: string;
  url: string;
  events: EventType[];
  enabled: boolean;
  disabledReason: string | null;
  failingSince: Date | null;
  previousSecretExpiresAt: Date | null;
  createdAt: Date;
  updatedAt: Date;
};

type EndpointRow = {
  id: string;
  org_id: string;
  url: string;
  events: string[];
  enabled: boolean;
  secret: string;
  previous_secret: string | null;
  previous_secret_expires_at: Date | null;
  failing_since: Date | null;
  disabled_reason: string | null;
  created_at: Date;
  updated_at: Date;
  deleted_at: Date | null;
};

function toEndpoint(r: EndpointRow): WebhookEndpoint {
  return {
    id: r.id,
    url: r.url,
    events: r.events as EventType[],
    enabled: r.enabled,
    disabledReason: r.disabled_reason,
    failingSince: r.failing_since,
    previousSecretExpiresAt: r.previous_secret_expires_at,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
  };
}

/** A Standard Webhooks secret: `whsec_` and 24 random bytes in base64. */
export function newWebhookSecret(): string {
  return `whsec_${randomBytes(24).toString("base64")}`;
}

const notFound = (id: string) => new BillingError("not_found", `no webhook endpoint ${id}`);

async function lockEndpoint(ctx: BillingContext, orgId: string, id: string): Promise<EndpointRow> {
  const [row] = await ctx.sql<EndpointRow[]>`
    select * from webhook_endpoints where id = ${id} and org_id = ${orgId} and deleted_at is null for update`;
  if (!row) throw notFound(id);
  return row;
}

/** Creates an endpoint; its secret is returned here and on rotation only. */
export async function createWebhookEndpoint(
  ctx: BillingContext,
  input: { orgId: string; url: string; events: EventType[]; enabled: boolean; policy: TargetPolicy },
): Promise<{ endpoint: WebhookEndpoint; secret: string }> {
  const url = checkWebhookUrl(input.url, input.policy).toString();
  const now = ctx.clock();
  return withTransaction(ctx, async (tx) => {
    // The org's row orders concurrent creations, so the limit holds under races.
    const [org] = await tx.sql`select id from organizations where id = ${input.orgId} for update`;
    if (!org) throw new BillingError("not_found", `no organization ${input.orgId}`);
    const [count] = await tx.sql<{ n: bigint }[]>`
      select count(*) as n from webhook_endpoints where org_id = ${input.orgId} and deleted_at is null`;
    if ((count?.n ?? 0n) >= BigInt(MAX_ENDPOINTS_PER_ORG))
      throw new BillingError("conflict", `an organization may have at most ${MAX_ENDPOINTS_PER_ORG} webhook endpoints`);
    const secret = newWebhookSecret();
    const [row] = await tx.sql<EndpointRow[]>`
      insert into webhook_endpoints (id, org_id, url, events, enabled, secret, created_at, updated_at)
      values (${newId("wh")}, ${input.orgId}, ${url}, ${[...new Set(input.events)]}, ${input.enabled}, ${secret}, ${now}, ${now})
      returning *`;
    if (!row) throw new Error("insert into webhook_endpoints returned no row");
    return { endpoint: toEndpoint(row), secret };
  });
}

export async function listWebhookEndpoints(ctx: BillingContext, input: { orgId: string }): Promise<WebhookEndpoint[]> {
  const rows = await ctx.sql<EndpointRow[]>`
    select * from webhook_endpoints where org_id = ${input.orgId} and deleted_at is null order by created_at, id`;
  return rows.map(toEndpoint);
}

export async function getWebhookEndpoint(
  ctx: BillingContext,
  input: { orgId: string; id: string },
): Promise<WebhookEndpoint> {
  const [row] = await ctx.sql<EndpointRow[]>`
    select * from webhook_endpoints where id = ${input.id} and org_id = ${input.orgId} and deleted_at is null`;
  if (!row) throw notFound(input.id);
  return toEndpoint(row);
}

/** Changes what is given. Enabling an endpoint (again) starts its failure streak afresh. */
export async function updateWebhookEndpoint(
  ctx: BillingContext,
  input: { orgId: string; id: string; url?: string; events?: EventType[]; enabled?: boolean; policy: TargetPolicy },
): Promise<WebhookEndpoint> {
  const url = input.url === undefined ? undefined : checkWebhookUrl(input.url, input.policy).toString();
  const now = ctx.clock();
  return withTransaction(ctx, async (tx) => {
    const row = await lockEndpoint(tx, input.orgId, input.id);
    const enabling = input.enabled === true && !row.enabled;
    const [updated] = await tx.sql<EndpointRow[]>`
      update webhook_endpoints set
        url = ${url ?? row.url},
        events = ${input.events ? [...new Set(input.events)] : row.events},
        enabled = ${input.enabled ?? row.enabled},
        failing_since = ${enabling ? null : row.failing_since},
        disabled_reason = ${input.enabled === undefined ? row.disabled_reason : null},
        updated_at = ${now}
      where id = ${row.id} returning *`;
    if (!updated) throw notFound(input.id);
    return toEndpoint(updated);
  });
}

/** Removes an endpoint (the app deletes no rows: it is marked deleted and receives nothing more). */
export async function deleteWebhookEndpoint(ctx: BillingContext, input: { orgId: string; id: string }): Promise<void> {
  const now = ctx.clock();
  const [row] = await ctx.sql`
    update webhook_endpoints set deleted_at = ${now}, enabled = false, updated_at = ${now}
    where id = ${input.id} and org_id = ${input.orgId} and deleted_at is null returning id`;
  if (!row) throw notFound(input.id);
}

/**
 * A new secret, returned once. The one it replaces keeps signing beside it for 24 h (two
 * signatures in `webhook-signature`), so a receiver can switch without missing a delivery.
 */
export async function rotateWebhookSecret(
  ctx: BillingContext,
  input: { orgId: string; id: string },
): Promise<{ endpoint: WebhookEndpoint; secret: string }> {
  const now = ctx.clock();
  return withTransaction(ctx, async (tx) => {
    const row = await lockEndpoint(tx, input.orgId, input.id);
    const secret = newWebhookSecret();
    const [updated] = await tx.sql<EndpointRow[]>`
      update webhook_endpoints set secret = ${secret}, previous_secret = ${row.secret},
        previous_secret_expires_at = ${new Date(now.getTime() + PREVIOUS_SECRET_VALID_MS)}, updated_at = ${now}
      where id = ${row.id} returning *`;
    if (!updated) throw notFound(input.id);
    return { endpoint: toEndpoint(updated), secret };
  });
}

/**
 * Sends `test.ping` to this endpoint only (enabled or not: checking a disabled endpoint before
 * enabling it again is the point). The event is in the log like any other; its delivery is made
 * here, in the same transaction, instead of by the fan-out to every endpoint.
 */
export async function sendTestEvent(
  ctx: BillingContext,
  input: { orgId: string; id: string },
): Promise<{ eventId: string; deliveryId: string }> {
  const now = ctx.clock();
  return withTransaction(ctx, async (tx) => {
    const row = await lockEndpoint(tx, input.orgId, input.id);
    const deliveryId = newId("dlv");
    const eventId = await emitEvent(tx.sql, {
      orgId: input.orgId,
      type: "test.ping",
      factKey: deliveryId,
      data: { webhook_id: row.id },
      at: now,
    });
    if (!eventId) throw new Error("test.ping: a fresh fact key already had an event");
    await tx.sql`update billing_events set fanned_out_at = ${now} where id = ${eventId}`;
    await tx.sql`insert into webhook_deliveries (id, event_id, endpoint_id, org_id, status, next_attempt_at, created_at)
                 values (${deliveryId}, ${eventId}, ${row.id}, ${input.orgId}, 'pending', ${now}, ${now})`;
    return { eventId, deliveryId };
  });
}

export type DeliveryView = {
  id: string;
  eventId: string;
  eventType: string;
  status: "pending" | "delivered" | "failed";
  attempts: {
    attempt: number;
    statusCode: number | null;
    error: string | null;
    responseExcerpt: string | null;
    startedAt: Date;
    durationMs: number;
  }[];
  nextAttemptAt: Date | null;
  deliveredAt: Date | null;
  createdAt: Date;
};

/** An endpoint's deliveries, newest first, each with its attempts (the delivery log). */
export async function listDeliveries(
  ctx: BillingContext,
  input: { orgId: string; endpointId: string; limit: number },
): Promise<{ data: DeliveryView[]; hasMore: boolean }> {
  await getWebhookEndpoint(ctx, { orgId: input.orgId, id: input.endpointId });
  const rows = await ctx.sql<
    {
      id: string;
      event_id: string;
      event_type: string;
      status: DeliveryView["status"];
      next_attempt_at: Date | null;
      delivered_at: Date | null;
      created_at: Date;
      attempts: {
        attempt: number;
        status_code: number | null;
        error: string | null;
        response_excerpt: string | null;
        started_at: string;
        duration_ms: number;
      }[];
    }[]
  >`
    select d.id, d.event_id, e.type as event_type, d.status, d.next_attempt_at, d.delivered_at, d.created_at,
      coalesce((select jsonb_agg(jsonb_build_object('attempt', a.attempt, 'status_code', a.status_code, 'error', a.error,
                  'response_excerpt', a.response_excerpt, 'started_at', a.started_at, 'duration_ms', a.duration_ms) order by a.attempt)
                from webhook_attempts a where a.delivery_id = d.id), '[]') as attempts
    from webhook_deliveries d join billing_events e on e.id = d.event_id
    where d.endpoint_id = ${input.endpointId} and d.org_id = ${input.orgId}
    order by d.created_at desc, d.id desc
    limit ${input.limit + 1}`;
  return {
    hasMore: rows.length > input.limit,
    data: rows.slice(0, input.limit).map((r) => ({
      id: r.id,
      eventId: r.event_id,
      eventType: r.event_type,
      status: r.status,
      attempts: r.attempts.map((a) => ({
        attempt: a.attempt,
        statusCode: a.status_code,
        error: a.error,
        responseExcerpt: a.response_excerpt,
        startedAt: new Date(a.started_at),
        durationMs: a.duration_ms,
      })),
      nextAttemptAt: r.next_attempt_at,
      deliveredAt: r.delivered_at,
      createdAt: r.created_at,
    })),
  };
}

/**
 * Makes a delivery due now: a failed one gets one more attempt (and the schedule's retries after
 * it, if any remain), a pending one is tried at once instead of at its scheduled time. A
 * delivered one is left as it is (409). Returns the attempts it had so far.
 */
export async function retryDelivery(
  ctx: BillingContext,
  input: { orgId: string; endpointId: string; deliveryId: string },
): Promise<{ attempts: number }> {
  const now = ctx.clock();
  await getWebhookEndpoint(ctx, { orgId: input.orgId, id: input.endpointId });
  const [row] = await ctx.sql<{ status: string; attempts: number }[]>`
    select status, attempts from webhook_deliveries
    where id = ${input.deliveryId} and endpoint_id = ${input.endpointId} and org_id = ${input.orgId}`;
  if (!row)
    throw new BillingError("not_found", `no delivery ${input.deliveryId} of webhook endpoint ${input.endpointId}`);
  if (row.status === "delivered")
    throw new BillingError("conflict", `delivery ${input.deliveryId} was delivered already`);
  const [updated] = await ctx.sql<{ attempts: number }[]>`
    update webhook_deliveries set status = 'pending', next_attempt_at = ${now}
    where id = ${input.deliveryId} and status <> 'delivered' returning attempts`;
  if (!updated) throw new BillingError("conflict", `delivery ${input.deliveryId} was delivered already`);
  return { attempts: updated.attempts };
}
