import type { Logger } from "pino";
import type { TransactionSql } from "../../db/client.js";
import { BillingError } from "../../errors.js";
import { newId } from "../../ids.js";
import { at, withTransaction, type BillingContext } from "../context.js";
import {
  chargeCardOffSession,
  defaultCard,
  type PaymentRefusal,
  type Processor,
  type RefusalKind,
} from "./card-charge.js";
import { monthOf } from "./settings.js";

/** Declines in a row that turn auto top-up off. */
export const MAX_CONSECUTIVE_DECLINES = 3;

export type CrossingDecision =
  | { outcome: "charged"; chargeId: string }
  | { outcome: "skipped"; reason: SkipReason }
  | { outcome: "already_decided"; chargeId: string | null };

export type SkipReason =
  | "disabled"
  | "no_default_card"
  | "charge_in_flight"
  | "monthly_limit"
  | "processor_not_configured";

/**
 * Decides a crossing once: either it starts one charge (reserving its amount in the month's total
 * and becoming the org's one charge in flight) or it is skipped, with the reason. All under the
 * org's auto top-up row lock, and each rule is also a constraint (migration 0026): a second charge
 * for the crossing, a second one in flight, or a month over its limit cannot be written.
 */
export async function decideCrossing(
  ctx: BillingContext,
  input: { crossingId: string; processorConfigured: boolean },
): Promise<CrossingDecision> {
  const now = ctx.clock();
  return withTransaction(at(ctx, now), async ({ sql: tx, logger }) => {
    const [crossing] = await tx<{ id: string; org_id: string; decided_at: Date | null }[]>`
      select id, org_id, decided_at from auto_topup_crossings where id = ${input.crossingId} for update`;
    if (!crossing) throw new BillingError("not_found", `no auto top-up crossing ${input.crossingId}`);
    if (crossing.decided_at) {
      // A retry of the job that charged it: its charge (if any) is run again, with the same key.
      const [charge] = await tx<{ id: string }[]>`select id from auto_topup_charges where crossing_id = ${crossing.id}`;
      return { outcome: "already_decided" as const, chargeId: charge?.id ?? null };
    }
    const orgId = crossing.org_id;
    const skip = async (reason: SkipReason): Promise<CrossingDecision> => {
      await tx`update auto_topup_crossings set decided_at = ${now}, outcome = 'skipped', reason = ${reason} where id = ${crossing.id}`;
      logger.info({ org_id: orgId, crossing_id: crossing.id, reason }, "auto top-up crossing skipped");
      return { outcome: "skipped", reason };
    };
    const [settings] = await tx<{ enabled: boolean; amount: bigint; monthly_limit: bigint }[]>`
      select enabled, amount, monthly_limit from auto_topup_settings where org_id = ${orgId} for update`;
    if (!settings?.enabled) return skip("disabled");
    if (!input.processorConfigured) return skip("processor_not_configured");
    if (!(await defaultCard(tx, orgId))) return skip("no_default_card");
    const [inFlight] = await tx`select 1 from auto_topup_charges where org_id = ${orgId} and status = 'pending'`;
    if (inFlight) return skip("charge_in_flight");
    const month = monthOf(now);
    const reserved = await tx`
      insert into auto_topup_months (org_id, month, charged, monthly_limit)
      values (${orgId}, ${month}, ${settings.amount.toString()}, ${settings.monthly_limit.toString()})
      on conflict (org_id, month) do update
        set charged = auto_topup_months.charged + excluded.charged, monthly_limit = excluded.monthly_limit
        where auto_topup_months.charged + auto_topup_months.paid_after_refusal + excluded.charged <= excluded.monthly_limit
      returning charged`;
    if (reserved.length === 0) return skip("monthly_limit");
    const chargeId = newId("atp");
    await tx`
      insert into auto_topup_charges (id, crossing_id, org_id, amount, month, status, created_at, updated_at)
      values (${chargeId}, ${crossing.id}, ${orgId}, ${settings.amount.toString()}, ${month}, 'pending', ${now}, ${now})`;
    await tx`update auto_topup_crossings set decided_at = ${now}, outcome = 'charged' where id = ${crossing.id}`;
    return { outcome: "charged", chargeId };
  });
}

export type ChargeRun = "charged" | "requires_action" | "declined" | "not_pending";

/**
 * Runs a pending charge at the processor (PaymentIntent, off-session, idempotency key = the
 * crossing's id) and records what it said. A success stays `pending` (in flight) until the signed
 * webhook credits it (markCardChargeSucceeded); a refusal ends it at once. The processor
 * unreachable: thrown, the charge stays pending, and a retry (the job's, or the sweep's) asks
 * again with the same key.
 */
export async function runAutoTopupCharge(
  ctx: BillingContext,
  input: { chargeId: string; processor: Processor },
): Promise<ChargeRun> {
  const [charge] = await ctx.sql<
    { org_id: string; crossing_id: string; amount: bigint; status: string; processor_payment_id: string | null }[]
  >`select org_id, crossing_id, amount, status, processor_payment_id from auto_topup_charges where id = ${input.chargeId}`;
  if (!charge) throw new BillingError("not_found", `no auto top-up charge ${input.chargeId}`);
  if (charge.status !== "pending" || charge.processor_payment_id) return "not_pending";
  const card = await withTransaction(ctx, ({ sql }) => defaultCard(sql, charge.org_id));
  if (!card) {
    await refuseCharge(ctx, { chargeId: input.chargeId, kind: "declined", code: "no_default_card", paymentId: null });
    return "declined";
  }
  const outcome = await chargeCardOffSession(input.processor, {
    ...card,
    amount: charge.amount,
    idempotencyKey: charge.crossing_id,
    description: "Hanzo auto top-up",
    metadata: { hanzo_org_id: charge.org_id, hanzo_auto_topup_charge: input.chargeId },
  });
  if (outcome.kind === "succeeded") {
    await withTransaction(at(ctx, ctx.clock()), async ({ sql: tx }) => {
      await tx`update auto_topup_charges set processor_payment_id = coalesce(processor_payment_id, ${outcome.paymentId}),
                 updated_at = ${ctx.clock()} where id = ${input.chargeId}`;
      await tx`update auto_topup_settings set consecutive_declines = 0 where org_id = ${charge.org_id}`;
    });
    return "charged";
  }
  await refuseCharge(ctx, { chargeId: input.chargeId, ...outcome });
  return outcome.kind;
}

/**
 * Ends a pending charge the processor refused, once: gives its amount back to the month's total,
 * counts a decline, and turns auto top-up off when the card needs the customer or after
 * MAX_CONSECUTIVE_DECLINES declines in a row (a billing_notices row, which also emits the
 * customer's `auto_topup.disabled` event, and a warn line say so).
 */
async function refuseCharge(
  ctx: BillingContext,
  input: { chargeId: string; kind: RefusalKind; code: string; paymentId: string | null },
): Promise<void> {
  const now = ctx.clock();
  await withTransaction(at(ctx, now), async ({ sql: tx, logger }) => {
    await endRefusedCharge(tx, logger, { ...input, now, which: tx`id = ${input.chargeId}` });
  });
}

/**
 * The signed webhook says a payment failed (payment_intent.payment_failed): if it is one of our
 * auto top-up charges still pending (by the payment id we recorded, or our charge id in its
 * metadata), it ends as refused, as if the worker had heard the refusal itself. This is what ends
 * a charge whose answer was lost and whose retry the processor can no longer replay (the same
 * idempotency key sent with another default card is refused). Only for the org the payment's
 * customer is linked to; runs in the event's transaction.
 */
export async function markAutoTopupRefused(
  tx: TransactionSql,
  logger: Logger,
  input: PaymentRefusal,
): Promise<boolean> {
  return endRefusedCharge(tx, logger, {
    ...input,
    which: tx`org_id = ${input.orgId} and (processor_payment_id = ${input.paymentId} or id = ${input.chargeRef ?? ""})`,
  });
}

async function endRefusedCharge(
  tx: TransactionSql,
  logger: Logger,
  input: {
    which: ReturnType<TransactionSql>;
    kind: RefusalKind;
    code: string;
    paymentId: string | null;
    now: Date;
  },
): Promise<boolean> {
  const { now } = input;
  const [ended] = await tx<{ id: string; org_id: string; amount: bigint; month: string }[]>`
    update auto_topup_charges set status = ${input.kind}, decline_code = ${input.code},
      processor_payment_id = coalesce(processor_payment_id, ${input.paymentId}), updated_at = ${now}
    where ${input.which} and status = 'pending'
    returning id, org_id, amount, month::text`;
  if (!ended) return false;
  await tx`update auto_topup_months set charged = charged - ${ended.amount.toString()}
           where org_id = ${ended.org_id} and month = ${ended.month}`;
  const [s] = await tx<{ enabled: boolean; consecutive_declines: number }[]>`
    update auto_topup_settings set consecutive_declines = least(consecutive_declines + 1, ${MAX_CONSECUTIVE_DECLINES})
    where org_id = ${ended.org_id} returning enabled, consecutive_declines`;
  logger.info(
    { org_id: ended.org_id, charge_id: ended.id, outcome: input.kind, code: input.code },
    "auto top-up charge refused by the card",
  );
  if (!s?.enabled) return true;
  const reason =
    input.kind === "requires_action"
      ? "requires_action"
      : s.consecutive_declines >= MAX_CONSECUTIVE_DECLINES
        ? "declined"
        : null;
  if (reason) await disableAutoTopup(tx, logger, { orgId: ended.org_id, reason, chargeId: ended.id, now });
  return true;
}

async function disableAutoTopup(
  tx: TransactionSql,
  logger: Logger,
  input: { orgId: string; reason: RefusalKind; chargeId: string; now: Date },
): Promise<void> {
  const { orgId, reason, chargeId, now } = input;
  await tx`update auto_topup_settings set enabled = false, disabled_reason = ${reason}, disabled_at = ${now}
           where org_id = ${orgId}`;
  const message =
    reason === "requires_action"
      ? "the default card needs the customer to authenticate the payment"
      : `the default card was declined ${MAX_CONSECUTIVE_DECLINES} times in a row`;
  await tx`insert into billing_notices (id, org_id, kind, details, created_at)
           values (${newId("ntc")}, ${orgId}, 'auto_topup_disabled', ${tx.json({ reason, charge_id: chargeId, message })}, ${now})`;
  logger.warn({ org_id: orgId, reason, charge_id: chargeId }, `auto top-up turned off: ${message}`);
}

/**
 * The signed webhook credited a payment: if it is one of our auto top-up charges (by the payment
 * id we recorded, or by our own charge id in its metadata when the webhook overtook our record),
 * the charge is no longer in flight. A charge already ended here as refused (its answer was lost
 * and the retry found no card to send) was paid all the same: it succeeds, and its whole amount
 * counts against its month again, as `paid_after_refusal` (migration 0052), which may take the
 * month past its limit: no further crossing is charged that month.
 * Runs in the credit's transaction; only for the org the payment's customer is linked to.
 */
export async function markAutoTopupSucceeded(
  tx: TransactionSql,
  input: { orgId: string; paymentId: string; chargeRef: string | null; now: Date },
): Promise<boolean> {
  const [charge] = await tx<{ id: string; status: string; amount: bigint; month: string }[]>`
    select id, status, amount, month::text from auto_topup_charges
    where org_id = ${input.orgId} and status <> 'succeeded'
      and (processor_payment_id = ${input.paymentId} or id = ${input.chargeRef ?? ""})
    for update`;
  if (!charge) return false;
  await tx`
    update auto_topup_charges set status = 'succeeded', processor_payment_id = coalesce(processor_payment_id, ${input.paymentId}),
      updated_at = ${input.now}
    where id = ${charge.id}`;
  if (charge.status !== "pending") {
    await tx`update auto_topup_months set paid_after_refusal = paid_after_refusal + ${charge.amount.toString()}
             where org_id = ${input.orgId} and month = ${charge.month}`;
  }
  await tx`update auto_topup_settings set consecutive_declines = 0 where org_id = ${input.orgId}`;
  return true;
}

/** Undecided crossings older than `olderThan` and pending charges not yet sent: what the sweep re-enqueues. */
export async function autoTopupWork(
  ctx: BillingContext,
  input: { olderThan: Date },
): Promise<{ crossings: string[]; charges: string[] }> {
  const crossings = await ctx.sql<{ id: string }[]>`
    select id from auto_topup_crossings where decided_at is null and created_at <= ${input.olderThan} order by created_at limit 500`;
  const charges = await ctx.sql<{ id: string }[]>`
    select id from auto_topup_charges where status = 'pending' and processor_payment_id is null and updated_at <= ${input.olderThan}
    order by created_at limit 500`;
  return { crossings: crossings.map((r) => r.id), charges: charges.map((r) => r.id) };
}
