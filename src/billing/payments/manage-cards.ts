import Stripe from "stripe";
import { BillingError } from "../../errors.js";
import { withTransaction } from "../context.js";
import { type CardContext, ensureProcessorCustomer, lockCustomer } from "./customers.js";
import { detachCard, type PaymentMethodView, setDefaultCard } from "./payment-methods.js";
import { callProcessor } from "./processor-client.js";

/**
 * A setup-mode Checkout Session: the customer types the card on the processor's page, never
 * ours; it reaches us as payment_method.attached. Nothing is stored here.
 */
export async function startCardSetup(
  ctx: CardContext,
  input: { orgId: string; successUrl: string; cancelUrl: string },
): Promise<{ url: string; expiresAt: Date }> {
  const customer = await ensureProcessorCustomer(ctx, { orgId: input.orgId });
  const session = await callProcessor("create the setup session", () =>
    ctx.processor.checkout.sessions.create({
      mode: "setup",
      customer,
      currency: "usd",
      success_url: input.successUrl,
      cancel_url: input.cancelUrl,
      metadata: { org_id: input.orgId },
    }),
  );
  if (!session.url) throw new Error(`setup session ${session.id} came back without a url`);
  return { url: session.url, expiresAt: new Date(session.expires_at * 1000) };
}

type CardRow = {
  id: string;
  processor_id: string;
  brand: string;
  last4: string;
  exp_month: number;
  exp_year: number;
  is_default: boolean;
};

async function savedCard(ctx: CardContext, orgId: string, id: string): Promise<CardRow> {
  const [row] = await ctx.sql<CardRow[]>`
    select id, processor_id, brand, last4, exp_month, exp_year, is_default from payment_methods
    where id = ${id} and org_id = ${orgId} and detached_at is null`;
  if (!row) throw new BillingError("not_found", `no saved payment method ${id}`, { details: { param: "id" } });
  return row;
}

const viewOf = (r: CardRow, isDefault: boolean): PaymentMethodView => ({
  id: r.id,
  brand: r.brand,
  last4: r.last4,
  expMonth: r.exp_month,
  expYear: r.exp_year,
  isDefault,
});

/**
 * Makes a saved card the default (the one renewals and auto top-up charge): set on the
 * processor's customer, then here at once, as the customer.updated event will say again.
 */
export async function makeDefaultPaymentMethod(
  ctx: CardContext,
  input: { orgId: string; id: string },
): Promise<PaymentMethodView> {
  const card = await savedCard(ctx, input.orgId, input.id);
  const customerId = await ensureProcessorCustomer(ctx, { orgId: input.orgId });
  try {
    await callProcessor("set the default card", () =>
      ctx.processor.customers.update(customerId, { invoice_settings: { default_payment_method: card.processor_id } }),
    );
  } catch (err) {
    if (!isGoneAtProcessor(err)) throw err;
    // The processor no longer has this card on the customer: it is removed here too, and the
    // caller learns it can no longer be used rather than seeing a server error.
    await markDetached(ctx, input.orgId, card);
    throw new BillingError("not_found", `payment method ${input.id} is no longer attached at the card processor`, {
      details: { param: "id" },
    });
  }
  await withTransaction(ctx, async (tx) => {
    const customer = await lockCustomer(tx.sql, { orgId: input.orgId });
    if (customer) await setDefaultCard(tx, { customer, processorId: card.processor_id, eventAt: ctx.clock() });
  });
  return viewOf(card, true);
}

/**
 * Removes a saved card: detached at the processor, then marked detached here (rows are never
 * deleted; the payment_method.detached event finds it already so). A card the processor no
 * longer has attached is removed all the same.
 */
export async function removePaymentMethod(
  ctx: CardContext,
  input: { orgId: string; id: string },
): Promise<PaymentMethodView> {
  const card = await savedCard(ctx, input.orgId, input.id);
  try {
    await callProcessor("detach the card", () => ctx.processor.paymentMethods.detach(card.processor_id));
  } catch (err) {
    if (!isGoneAtProcessor(err)) throw err;
  }
  await markDetached(ctx, input.orgId, card);
  return viewOf(card, false);
}

/** The processor answered that the card does not exist or is not attached to the customer. */
function isGoneAtProcessor(err: unknown): boolean {
  return (
    err instanceof Stripe.errors.StripeInvalidRequestError &&
    (err.code === "resource_missing" || /not attached|does not have a payment method/i.test(err.message))
  );
}

async function markDetached(ctx: CardContext, orgId: string, card: CardRow): Promise<void> {
  await withTransaction(ctx, async (tx) => {
    const customer = await lockCustomer(tx.sql, { orgId });
    if (!customer) return;
    await detachCard(tx, {
      customer,
      processorId: card.processor_id,
      card: { brand: card.brand, last4: card.last4, expMonth: card.exp_month, expYear: card.exp_year },
      eventAt: ctx.clock(),
    });
  });
}
