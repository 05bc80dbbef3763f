import type { Logger } from "pino";
import type { z } from "zod";
import type { TransactionSql } from "../../db/client.js";
import { retryOnDeadlock } from "../../db/deadlock-retry.js";
import { BillingError } from "../../errors.js";
import { at, withTransaction, type BillingContext, type TransactionContext } from "../context.js";
import { markAutoTopupRefused, markAutoTopupSucceeded } from "../auto-topup/charges.js";
import { renewalOfPayment, renewalPaymentFailed } from "../renewals/collect-renewal.js";
import { creditCardTopup, type CreditOutcome } from "./credit-card-topup.js";
import { reverseCardTopup, type DisputeEnding, type Reversal, type ReversalOutcome } from "./reverse-card-topup.js";
import { lockCustomer, type LockedCustomer } from "./customers.js";
import { lockPayment, noteChargeOfPayment, paymentOfCharge } from "./card-payment.js";
import {
  Charge,
  CheckoutSession,
  Customer,
  FailedPaymentIntent,
  Dispute,
  PaymentIntent,
  PaymentMethod,
  PreviousCustomer,
  type ProcessorEvent,
  SucceededCharge,
} from "./objects.js";
import { detachCard, orgOfCard, saveCard, setDefaultCard } from "./payment-methods.js";
import { emitTopupEvent } from "../topups/topup-events.js";

export type EventOutcome =
  | CreditOutcome
  | ReversalOutcome
  | "awaiting_payment"
  | "unknown_customer"
  | "payment_method_saved"
  | "payment_method_detached"
  | "default_changed"
  | "stale"
  | "not_a_card"
  | "no_customer"
  | "ignored"
  | "wrong_mode"
  | "unknown_session"
  | "not_paid"
  | "session_expired"
  | "no_currency"
  | "charge_refused";

export type HandledEvent = { duplicate: boolean; outcome: string };

type Result = { outcome: EventOutcome; orgId?: string | null; awaitingRef?: string; details?: Record<string, string> };

/**
 * Handles one verified event exactly once: its id is claimed in processor_events in the same
 * transaction as its effects, so a redelivery, or a duplicate racing it (which waits on the
 * key), does nothing and reports the first outcome. A failure rolls everything back and the
 * processor retries. One exception: an event that found no linked customer changed nothing,
 * so a redelivery (e.g. a resend from the processor's dashboard once an operator has linked
 * the customer) is handled again.
 */
export async function handleProcessorEvent(
  ctx: BillingContext,
  input: { event: ProcessorEvent; livemode: boolean },
): Promise<HandledEvent> {
  const { event, livemode } = input;
  const now = ctx.clock();
  // Events of one payment lock its ids in sorted order, but a reversal another event kept while
  // this one waited can name an id not locked yet: such a deadlock is run again, not a 500.
  return retryOnDeadlock(() => handleOnce(ctx, event, livemode, now));
}

async function handleOnce(
  ctx: BillingContext,
  event: ProcessorEvent,
  livemode: boolean,
  now: Date,
): Promise<HandledEvent> {
  return withTransaction(at(ctx, now), async (txc) => {
    const tx = txc.sql;
    const claimed = await tx`
      insert into processor_events (id, type, livemode, event_created_at, received_at, outcome)
      values (${event.id}, ${event.type}, ${event.livemode}, ${new Date(event.created * 1000)}, ${now}, 'processing')
      on conflict (id) do update set received_at = excluded.received_at, outcome = excluded.outcome
        where processor_events.outcome = 'unknown_customer'
      returning 1`;
    if (claimed.length === 0) {
      const [first] = await tx<{ outcome: string }[]>`select outcome from processor_events where id = ${event.id}`;
      if (!first) throw new Error(`processor event ${event.id} was claimed without a row`);
      return { duplicate: true, outcome: first.outcome };
    }
    // Test-mode events on a live deployment (or the reverse) are recorded and change nothing.
    const result: Result =
      event.livemode === livemode ? await dispatch(txc, event) : wrongMode(ctx.logger, event, livemode);
    await tx`
      update processor_events set outcome = ${result.outcome}, org_id = ${result.orgId ?? null}, awaiting_ref = ${result.awaitingRef ?? null},
        details = ${tx.json(result.details ?? {})}
      where id = ${event.id}`;
    return { duplicate: false, outcome: result.outcome };
  });
}

function wrongMode(logger: Logger, event: ProcessorEvent, livemode: boolean): Result {
  logger.warn(
    { event_id: event.id, type: event.type, event_livemode: event.livemode, deployment_livemode: livemode },
    "processor event of the other mode ignored",
  );
  return { outcome: "wrong_mode" };
}

async function dispatch(ctx: TransactionContext, event: ProcessorEvent): Promise<Result> {
  const { sql: tx, logger } = ctx;
  const eventAt = new Date(event.created * 1000);
  const unknownCustomer = (): Result => {
    logger.warn(
      { event_id: event.id, type: event.type },
      "processor event for a customer linked to no organization: recorded, nothing changed",
    );
    return { outcome: "unknown_customer" };
  };
  switch (event.type) {
    case "payment_intent.succeeded": {
      const pi = parseObject(PaymentIntent, event, logger);
      const [link] = pi.customer
        ? await tx<{ org_id: string }[]>`select org_id from processor_customers where customer_id = ${pi.customer}`
        : [];
      if (!link) return unknownCustomer();
      // Charges we started (auto top-up, renewal) are found by the payment id we recorded, or by
      // our id in the metadata when this event overtook that record; only within the linked org.
      const ours = { orgId: link.org_id, paymentId: pi.id, now: ctx.clock() };
      const invoiceFirst = await renewalOfPayment(tx, {
        ...ours,
        chargeRef: pi.metadata?.hanzo_renewal_charge ?? null,
      });
      await markAutoTopupSucceeded(tx, { ...ours, chargeRef: pi.metadata?.hanzo_auto_topup_charge ?? null });
      const chargeId = pi.latest_charge ?? null;
      // The payment's locks before its checkout's row (linkCheckoutPayment), as completeCheckout takes them.
      await lockPaymentAndKept(tx, [pi.id, chargeId]);
      const outcome = await creditCardTopup(ctx, {
        orgId: link.org_id,
        paymentId: pi.id,
        chargeId,
        currency: pi.currency,
        amountMinor: BigInt(pi.amount_received),
        invoiceFirst,
      });
      // Also when already credited: this event may be the first to name the payment's charge.
      if (outcome === "credited" || outcome === "already_credited") {
        await paymentKnown(ctx, { paymentId: pi.id, chargeId });
      }
      const topup = await linkCheckoutPayment(tx, {
        topupId: pi.metadata?.topup_id,
        orgId: link.org_id,
        paymentId: pi.id,
      });
      if (topup && outcome === "credited") {
        await emitTopupEvent(tx, {
          type: "topup.succeeded",
          topupId: topup.id,
          orgId: link.org_id,
          amountCents: topup.amount_cents,
          at: ctx.clock(),
        });
      }
      return { outcome, orgId: link.org_id };
    }
    case "payment_intent.payment_failed": {
      // Only our off-session charges end on it (they are confirmed once and never again); a
      // Checkout Session's payment may fail and then succeed with another card on its page.
      const pi = parseObject(FailedPaymentIntent, event, logger);
      const [link] = pi.customer
        ? await tx<{ org_id: string }[]>`select org_id from processor_customers where customer_id = ${pi.customer}`
        : [];
      if (!link) return unknownCustomer();
      const error = pi.last_payment_error;
      const refusal = {
        orgId: link.org_id,
        paymentId: pi.id,
        kind: error?.code === "authentication_required" ? ("requires_action" as const) : ("declined" as const),
        code: error?.decline_code ?? error?.code ?? "payment_failed",
        now: ctx.clock(),
      };
      const ended =
        (await markAutoTopupRefused(tx, logger, {
          ...refusal,
          chargeRef: pi.metadata?.hanzo_auto_topup_charge ?? null,
        })) ||
        (await renewalPaymentFailed(tx, logger, { ...refusal, chargeRef: pi.metadata?.hanzo_renewal_charge ?? null }));
      return { outcome: ended ? "charge_refused" : "ignored", orgId: link.org_id };
    }
    case "checkout.session.completed": {
      const session = parseObject(CheckoutSession, event, logger);
      if (session.mode !== "payment") return { outcome: "ignored" }; // setup: the card arrives as payment_method.attached
      return completeCheckout(ctx, session, event);
    }
    case "checkout.session.expired": {
      const session = parseObject(CheckoutSession, event, logger);
      const [expired] = await tx<{ id: string; org_id: string; amount_cents: bigint }[]>`
        update card_checkouts set status = 'expired', updated_at = ${ctx.clock()}
        where session_id = ${session.id} and status = 'open' returning id, org_id, amount_cents`;
      if (!expired) return { outcome: "ignored" };
      await emitTopupEvent(tx, {
        type: "topup.failed",
        topupId: expired.id,
        orgId: expired.org_id,
        amountCents: expired.amount_cents,
        at: ctx.clock(),
        failure: "the checkout session expired unpaid",
      });
      return { outcome: "session_expired", orgId: expired.org_id };
    }
    case "charge.succeeded": {
      // For the card's fingerprint, and for which payment the charge is (the payment is credited
      // by payment_intent.succeeded): a refund or dispute naming only the charge then finds it.
      const ch = parseObject(SucceededCharge, event, logger);
      if (ch.payment_intent) await paymentKnown(ctx, { paymentId: ch.payment_intent, chargeId: ch.id });
      const [link] = ch.customer
        ? await tx<{ org_id: string }[]>`select org_id from processor_customers where customer_id = ${ch.customer}`
        : [];
      if (!link) return { outcome: "ignored" };
      const fingerprint = ch.payment_method_details?.card?.fingerprint;
      await recordCardFingerprint(tx, { orgId: link.org_id, fingerprint, now: ctx.clock() });
      return { outcome: "ignored", orgId: link.org_id };
    }
    case "charge.refunded": {
      const ch = parseObject(Charge, event, logger);
      return reverseOrAwait(ctx, {
        kind: "refund",
        chargeId: ch.id,
        paymentId: ch.payment_intent ?? null,
        amountRefundedMinor: BigInt(ch.amount_refunded),
        currency: ch.currency,
      });
    }
    case "charge.dispute.created": {
      const dp = parseObject(Dispute, event, logger);
      return reverseOrAwait(ctx, {
        kind: "dispute",
        disputeId: dp.id,
        chargeId: dp.charge,
        paymentId: dp.payment_intent ?? null,
        amountMinor: BigInt(dp.amount),
        currency: dp.currency,
      });
    }
    case "charge.dispute.closed":
    case "charge.dispute.funds_reinstated": {
      const dp = parseObject(Dispute, event, logger);
      const ending = disputeEnding(event.type, dp.status);
      if (!ending) {
        logger.warn(
          { event_id: event.id, dispute_status: dp.status ?? null },
          "card dispute closed with a status we do not know: left open",
        );
        return { outcome: "ignored" };
      }
      return reverseOrAwait(ctx, {
        kind: "dispute_closed",
        disputeId: dp.id,
        chargeId: dp.charge,
        paymentId: dp.payment_intent ?? null,
        ending,
        currency: dp.currency,
      });
    }
    case "payment_method.attached":
    case "payment_method.updated": {
      const pm = parseObject(PaymentMethod, event, logger);
      if (pm.type !== "card" || !pm.card) return { outcome: "not_a_card" };
      if (!pm.customer) return { outcome: "no_customer" }; // an update to a card no customer holds
      const customer = await lockCustomer(tx, { customerId: pm.customer });
      if (!customer) return unknownCustomer();
      const saved = await saveCard(ctx, { customer, processorId: pm.id, card: cardOf(pm.card), eventAt });
      await recordCardFingerprint(tx, { orgId: customer.orgId, fingerprint: pm.card.fingerprint, now: ctx.clock() });
      return { outcome: saved === "saved" ? "payment_method_saved" : "stale", orgId: customer.orgId };
    }
    case "payment_method.detached": {
      const pm = parseObject(PaymentMethod, event, logger);
      if (pm.type !== "card" || !pm.card) return { outcome: "not_a_card" };
      const customer = await customerOfDetachedCard(tx, event, pm.id, pm.customer ?? null);
      if (!customer) return unknownCustomer();
      const detached = await detachCard(ctx, { customer, processorId: pm.id, card: cardOf(pm.card), eventAt });
      return { outcome: detached === "detached" ? "payment_method_detached" : "stale", orgId: customer.orgId };
    }
    case "customer.updated": {
      const cus = parseObject(Customer, event, logger);
      const customer = await lockCustomer(tx, { customerId: cus.id });
      if (!customer) return unknownCustomer();
      if (!cus.invoice_settings) return { outcome: "ignored", orgId: customer.orgId };
      const changed = await setDefaultCard(ctx, {
        customer,
        processorId: cus.invoice_settings.default_payment_method ?? null,
        eventAt,
      });
      return { outcome: changed, orgId: customer.orgId };
    }
    default:
      // Subscribed to more than we handle, or a new type: acknowledged so it is not retried.
      return { outcome: "ignored" };
  }
}

/**
 * Notes that the org was seen with this card (its processor fingerprint), once per org and card:
 * a self-referral signal (src/billing/referrals/self-referral.ts). Nothing without a fingerprint.
 */
async function recordCardFingerprint(
  tx: TransactionSql,
  r: { orgId: string; fingerprint: string | null | undefined; now: Date },
): Promise<void> {
  if (!r.fingerprint) return;
  await tx`insert into card_fingerprints (org_id, fingerprint, seen_at) values (${r.orgId}, ${r.fingerprint}, ${r.now})
           on conflict do nothing`;
}

/**
 * A won dispute, or an inquiry ("warning_…") that closed without becoming a chargeback, leaves
 * the org its top-up; a lost one does not. Any other status is not an ending we can act on.
 */
function disputeEnding(type: string, status: string | undefined): DisputeEnding | null {
  if (type === "charge.dispute.funds_reinstated") return "funds_reinstated";
  if (status === "won" || status === "warning_closed") return "won";
  if (status === "lost") return "lost";
  return null;
}

/**
 * A paid Checkout Session credits the org it was made for (card_checkouts), never one read from
 * the event: a session we did not make is recorded and credits nothing. The credit is keyed by
 * the payment id, as payment_intent.succeeded's, so whichever of the two arrives first credits
 * and the other finds it done. A session that does not say its currency credits nothing and
 * refuses nothing: the payment's own event, which always says it, decides.
 */
async function completeCheckout(
  ctx: TransactionContext,
  session: CheckoutSession,
  event: ProcessorEvent,
): Promise<Result> {
  const { sql: tx, logger } = ctx;
  // The payment's locks before the checkout's row, in the order payment_intent.succeeded takes them.
  if (session.payment_intent) await lockPaymentAndKept(tx, [session.payment_intent]);
  const [topup] = await tx<{ id: string; org_id: string; amount_cents: bigint }[]>`
    select id, org_id, amount_cents from card_checkouts where session_id = ${session.id} for update`;
  if (!topup) {
    logger.warn(
      { event_id: event.id, type: event.type },
      "checkout session completed that no top-up of ours made: recorded, nothing credited",
    );
    return { outcome: "unknown_session" };
  }
  if (session.payment_status !== "paid" || !session.payment_intent) return { outcome: "not_paid", orgId: topup.org_id };
  const amountMinor = BigInt(session.amount_total ?? 0);
  if (amountMinor !== BigInt(topup.amount_cents)) {
    logger.error(
      { topup_id: topup.id, asked_cents: topup.amount_cents.toString(), paid_cents: amountMinor.toString() },
      "checkout session paid another amount than the top-up asked: what was paid is credited",
    );
  }
  await tx`
    update card_checkouts set status = 'completed', payment_id = ${session.payment_intent}, updated_at = ${ctx.clock()}
    where id = ${topup.id}`;
  if (!session.currency) {
    logger.warn(
      { event_id: event.id, topup_id: topup.id },
      "checkout session paid without a currency: left to the payment's own event to credit",
    );
    return { outcome: "no_currency", orgId: topup.org_id };
  }
  const outcome = await creditCardTopup(ctx, {
    orgId: topup.org_id,
    paymentId: session.payment_intent,
    chargeId: null,
    currency: session.currency,
    amountMinor,
  });
  if (outcome === "credited") await applyAwaitingReversals(ctx, [session.payment_intent]);
  // Also when the payment's own event credited first: the event is one per top-up (its fact key).
  if (outcome === "credited" || outcome === "already_credited") {
    await emitTopupEvent(tx, {
      type: "topup.succeeded",
      topupId: topup.id,
      orgId: topup.org_id,
      amountCents: BigInt(topup.amount_cents),
      at: ctx.clock(),
    });
  }
  return { outcome, orgId: topup.org_id };
}

/**
 * The top-up of the org a payment paid for: the one its completed session already linked it to
 * (a session that did not say its currency left the credit to this payment's event), or the one
 * its metadata names, of the same org and not yet linked to a payment, which is linked now.
 */
async function linkCheckoutPayment(
  tx: TransactionSql,
  p: { topupId: string | undefined; orgId: string; paymentId: string },
): Promise<{ id: string; amount_cents: bigint } | null> {
  const [known] = await tx<{ id: string; amount_cents: bigint }[]>`
    select id, amount_cents from card_checkouts where payment_id = ${p.paymentId} and org_id = ${p.orgId}`;
  if (known) return known;
  if (!p.topupId) return null;
  const [linked] = await tx<{ id: string; amount_cents: bigint }[]>`
    update card_checkouts set payment_id = ${p.paymentId}, status = 'completed'
    where id = ${p.topupId} and org_id = ${p.orgId} and payment_id is null
      and not exists (select 1 from card_checkouts other where other.payment_id = ${p.paymentId})
    returning id, amount_cents`;
  return linked ?? null;
}

/**
 * A refund or dispute for a payment we have not credited yet may simply have overtaken the
 * payment's own event (the processor does not order deliveries). It is kept, and applied in
 * the same transaction that credits the payment, so that nothing depends on arrival order.
 */
async function reverseOrAwait(ctx: TransactionContext, named: Reversal): Promise<Result> {
  const { logger } = ctx;
  // A reversal naming only its charge, of a charge an earlier event named with its payment
  // (charge.succeeded may come before the payment is credited): it is the payment's. Read under
  // the charge's lock, which an event linking it holds until it commits (else a link committed
  // meanwhile was missed, and the reversal was kept under the charge for ever).
  if (!named.paymentId) await lockPayment(ctx.sql, [named.chargeId]);
  const paymentId = named.paymentId ?? (await paymentOfCharge(ctx.sql, named.chargeId));
  const r: Reversal = { ...named, paymentId };
  // Kept ones that named only this charge arrived earlier: they are applied first.
  if (r.paymentId) await paymentKnown(ctx, { paymentId: r.paymentId, chargeId: r.chargeId });
  const { outcome, orgId } = await reverseCardTopup(ctx, r);
  if (outcome !== "unknown_payment") return { outcome, orgId };
  logger.info(
    { kind: r.kind, payment_id: r.paymentId, charge_id: r.chargeId },
    `card ${r.kind} for a payment not credited (yet): kept until it is`,
  );
  return { outcome: "awaiting_payment", awaitingRef: r.paymentId ?? r.chargeId, details: reversalToJson(r) };
}

/**
 * Takes the payment's lock (lockPayment) on its ids and on those named by the reversals kept
 * under them, all at once in sorted order: applying those reversals then takes no new lock, so
 * two events of one payment (checkout.session.completed naming no charge, payment_intent.succeeded
 * naming it) cannot each hold a lock the other waits for.
 */
async function lockPaymentAndKept(tx: TransactionSql, refs: (string | null)[]): Promise<void> {
  const known = refs.filter((r): r is string => r !== null);
  const kept = await tx<{ payment_id: string | null; charge_id: string | null }[]>`
    select details->>'payment_id' as payment_id, details->>'charge_id' as charge_id from processor_events
    where outcome = 'awaiting_payment' and awaiting_ref = any(${known})`;
  await lockPayment(tx, [...known, ...kept.flatMap((k) => [k.payment_id, k.charge_id])]);
}

/**
 * An event named a payment, and its charge if it knows it. A charge's refunds and disputes may
 * name only the charge (kept under it as awaiting_payment when nothing matched): once the pair is
 * known the charge is noted on the payment's top-up, those kept reversals are kept under the
 * payment from now on (and name it), and every reversal kept for the payment is applied if the
 * payment has been credited (otherwise they wait for its credit, which applies them).
 */
async function paymentKnown(ctx: TransactionContext, p: { paymentId: string; chargeId: string | null }): Promise<void> {
  const tx = ctx.sql;
  await lockPaymentAndKept(tx, [p.paymentId, p.chargeId]);
  if (
    p.chargeId &&
    (await noteChargeOfPayment(tx, { paymentId: p.paymentId, chargeId: p.chargeId, now: ctx.clock() }))
  ) {
    await tx`
      update processor_events set awaiting_ref = ${p.paymentId}, details = details || ${tx.json({ payment_id: p.paymentId })}
      where outcome = 'awaiting_payment' and awaiting_ref = ${p.chargeId}`;
  }
  await applyAwaitingReversals(ctx, [p.paymentId]);
}

/**
 * Applies the reversals kept for these payment refs, in the order they happened, each once: its
 * row is locked and leaves awaiting_payment in this transaction (a concurrent caller finds it
 * gone), and its ledger transaction has its own idempotency key. One whose payment is still not
 * credited (unknown_payment) stays kept.
 */
async function applyAwaitingReversals(ctx: TransactionContext, refs: (string | null)[]): Promise<void> {
  const tx = ctx.sql;
  const waiting = await tx<{ id: string; details: Record<string, string> }[]>`
    select id, details from processor_events
    where outcome = 'awaiting_payment' and awaiting_ref = any(${refs.filter((r): r is string => r !== null)})
    order by event_created_at, received_at, id
    for update`;
  for (const event of waiting) {
    const { outcome, orgId } = await reverseCardTopup(ctx, reversalFromJson(event.details));
    if (outcome === "unknown_payment") continue;
    const moved = outcome === "reversed" || outcome === "reinstated";
    await tx`update processor_events set outcome = ${moved ? "applied_after_payment" : outcome}, org_id = ${orgId}
             where id = ${event.id}`;
  }
}

async function customerOfDetachedCard(
  tx: TransactionSql,
  event: ProcessorEvent,
  processorId: string,
  current: string | null,
): Promise<LockedCustomer | null> {
  // A detached card no longer names its customer; the event's previous_attributes say which one it left.
  const previous = PreviousCustomer.safeParse(event.data.previous_attributes ?? {});
  const customerId = current ?? (previous.success ? previous.data.customer : null);
  if (customerId) {
    const customer = await lockCustomer(tx, { customerId });
    if (customer) return customer;
  }
  const orgId = await orgOfCard(tx, processorId);
  return orgId ? lockCustomer(tx, { orgId }) : null;
}

function cardOf(card: NonNullable<PaymentMethod["card"]>) {
  return { brand: card.brand, last4: card.last4, expMonth: card.exp_month, expYear: card.exp_year };
}

/**
 * A signed event we handle whose object lacks what we need is refused (and rolled back), not
 * acknowledged: the processor keeps retrying it while the cause is fixed, instead of losing it.
 * The message names fields only, never values.
 */
function parseObject<S extends z.ZodType>(schema: S, event: ProcessorEvent, logger: Logger): z.infer<S> {
  const parsed = schema.safeParse(event.data.object);
  if (parsed.success) return parsed.data;
  const fields = parsed.error.issues.map((i) => i.path.join(".") || "(object)").join(", ");
  logger.error(
    { event_id: event.id, type: event.type, fields },
    "processor event object not understood: refused, the processor will retry",
  );
  throw new BillingError(
    "invalid_request",
    `${event.type}: data.object is missing or has unexpected fields: ${fields}`,
    {
      details: { param: "data.object" },
    },
  );
}

function reversalToJson(r: Reversal): Record<string, string> {
  const common = { kind: r.kind, charge_id: r.chargeId, payment_id: r.paymentId ?? "", currency: r.currency };
  switch (r.kind) {
    case "refund":
      return { ...common, amount_refunded_minor: r.amountRefundedMinor.toString() };
    case "dispute":
      return { ...common, dispute_id: r.disputeId, amount_minor: r.amountMinor.toString() };
    case "dispute_closed":
      return { ...common, dispute_id: r.disputeId, ending: r.ending };
  }
}

function reversalFromJson(d: Record<string, string>): Reversal {
  const field = (name: string): string => {
    const value = d[name];
    if (value === undefined) throw new Error(`awaiting processor event without ${name}`);
    return value;
  };
  const common = { chargeId: field("charge_id"), paymentId: d.payment_id || null, currency: field("currency") };
  switch (d.kind) {
    case "refund":
      return { kind: "refund", ...common, amountRefundedMinor: BigInt(field("amount_refunded_minor")) };
    case "dispute_closed":
      return {
        kind: "dispute_closed",
        ...common,
        disputeId: field("dispute_id"),
        ending: field("ending") as DisputeEnding,
      };
    case "dispute":
      return { kind: "dispute", ...common, disputeId: field("dispute_id"), amountMinor: BigInt(field("amount_minor")) };
    default:
      // Written by a newer version of this code: fail (and roll back) rather than guess.
      throw new Error(`awaiting processor event of unknown kind ${d.kind}`);
  }
}
