import { createHash } from "node:crypto";
import { BillingError } from "../../errors.js";
import { newId } from "../../ids.js";
import { withTransaction } from "../context.js";
import { centsToNanoUsd } from "../payments/card-payment.js";
import { type CardContext, ensureProcessorCustomer } from "../payments/customers.js";
import { callProcessor } from "../payments/processor-client.js";
import { type TopupStatus, topupStatuses } from "./list-topups.js";

export type CardTopupInput = {
  orgId: string;
  /** The client's Idempotency-Key: the same key and request give the same top-up and session. */
  idempotencyKey: string;
  amountCents: bigint;
  successUrl: string;
  cancelUrl: string;
};

export type CardTopup = { id: string; url: string; status: TopupStatus; amountNanoUsd: bigint; createdAt: Date };

type Row = {
  id: string;
  request_hash: string;
  session_id: string | null;
  session_url: string | null;
  amount_cents: bigint;
  created_at: Date;
};

/**
 * Starts a card top-up: a processor Checkout Session in payment mode for the org's customer
 * (created and linked on first use). Nothing is credited here: the credit arrives only through
 * the signed webhook (see payments/events.ts), to the org recorded with the session.
 *
 * The row is written first, keyed by (org, Idempotency-Key), and the processor is asked with the
 * row's id as its idempotency key: a retry (after a timeout, a 503, a crash) finds the row and
 * gets the same session back, even if the processor made it but its answer was lost. Racing
 * duplicates queue on the row lock. The same key with another request is refused (409).
 */
export async function createCardTopup(
  ctx: CardContext,
  input: CardTopupInput,
): Promise<{ topup: CardTopup; created: boolean }> {
  const now = ctx.clock();
  const requestHash = createHash("sha256")
    .update(JSON.stringify([input.amountCents.toString(), input.successUrl, input.cancelUrl]))
    .digest("hex");
  const [inserted] = await ctx.sql<Row[]>`
    insert into card_checkouts (id, org_id, idempotency_key, request_hash, amount_cents, currency, created_at, updated_at)
    values (${newId("top")}, ${input.orgId}, ${input.idempotencyKey}, ${requestHash}, ${input.amountCents.toString()}, 'usd', ${now}, ${now})
    on conflict (org_id, idempotency_key) do nothing
    returning id, request_hash, session_id, session_url, amount_cents, created_at`;
  const row =
    inserted ??
    (
      await ctx.sql<Row[]>`
        select id, request_hash, session_id, session_url, amount_cents, created_at from card_checkouts
        where org_id = ${input.orgId} and idempotency_key = ${input.idempotencyKey}`
    )[0];
  if (!row) throw new Error(`card top-up for key ${input.idempotencyKey} neither inserted nor found`);
  if (row.request_hash !== requestHash) {
    throw new BillingError(
      "idempotency_key_reused",
      "this Idempotency-Key was used for a different top-up (amount or URLs); use a new key for a new top-up",
      { details: { param: "Idempotency-Key" } },
    );
  }
  if (row.session_id && row.session_url) return { topup: await view(ctx, row, row.session_url), created: false };

  const customerId = await ensureProcessorCustomer(ctx, { orgId: input.orgId });
  const { url, created } = await withTransaction(ctx, async ({ sql: tx }) => {
    const [locked] = await tx<{ session_id: string | null; session_url: string | null }[]>`
      select session_id, session_url from card_checkouts where id = ${row.id} for update`;
    if (locked?.session_id && locked.session_url) return { url: locked.session_url, created: false };
    const metadata = { topup_id: row.id, org_id: input.orgId };
    const session = await callProcessor("create the checkout session", () =>
      ctx.processor.checkout.sessions.create(
        {
          mode: "payment",
          customer: customerId,
          client_reference_id: row.id,
          line_items: [
            {
              quantity: 1,
              price_data: {
                currency: "usd",
                unit_amount: Number(input.amountCents),
                product_data: { name: "Hanzo Cloud credits" },
              },
            },
          ],
          success_url: input.successUrl,
          cancel_url: input.cancelUrl,
          metadata,
          payment_intent_data: { metadata },
        },
        { idempotencyKey: `hanzo-topup-${row.id}` },
      ),
    );
    if (!session.url) throw new Error(`checkout session ${session.id} came back without a url`);
    await tx`
      update card_checkouts set session_id = ${session.id}, session_url = ${session.url}, updated_at = ${ctx.clock()}
      where id = ${row.id}`;
    return { url: session.url, created: true };
  });
  return { topup: await view(ctx, row, url), created };
}

async function view(ctx: CardContext, row: Row, url: string): Promise<CardTopup> {
  const statuses = await topupStatuses(ctx, [row.id]);
  return {
    id: row.id,
    url,
    status: statuses.get(row.id) ?? "pending",
    amountNanoUsd: centsToNanoUsd(BigInt(row.amount_cents)),
    createdAt: row.created_at,
  };
}
