import { BillingError } from "../../errors.js";
import { newId } from "../../ids.js";
import { fingerprint } from "../../ledger/post-transaction.js";
import { orgCreditsAccount } from "../../ledger/accounts.js";
import { MAX_NANO_USD } from "../../ledger/money.js";
import { withTransaction, type BillingContext } from "../context.js";

export type AdjustmentInput = {
  orgId: string;
  amount: bigint;
  description: string;
  correctsInvoiceId?: string;
  idempotencyKey: string;
};

/**
 * What an organization's queued adjustments may add up to, counting each by its size whichever
 * way it goes: one adjustment's own limit (the API's). An invoice sums the ones queued before its
 * cycle ended with its usage and plan; bounded by size, every such subset stays far inside
 * PostgreSQL's bigint, whatever the clocks of the processes that queued them (a bound on their net
 * sum let +9M and -9M pairs from clocks either side of a boundary overflow one close). Without a
 * bound, enough of them made every close of the org fail.
 */
export const MAX_QUEUED_ADJUSTMENTS_NANO_USD = MAX_NANO_USD / 1000n;

/**
 * What an organization's credits may come to with the credits queued for its next invoices: far
 * inside PostgreSQL's bigint (9.2e18 nano-USD) whatever else is credited meanwhile (a grant is at
 * most 1,000,000 USD, a card top-up 10,000). Without it, one 9,000,000 USD credit at each of 1,025
 * early closes took the balance past bigint, and every later close of the org failed.
 */
export const MAX_ORG_CREDITS_NANO_USD = MAX_NANO_USD / 9n;

/** Queues a correction for the org's next invoice (negative amount = a credit to the customer). */
export async function createAdjustment(
  ctx: BillingContext,
  input: AdjustmentInput,
): Promise<{ id: string; created: boolean }> {
  const now = ctx.clock();
  return withTransaction(ctx, async ({ sql }) => {
    // The organization's row lock orders adjustments of one org, so their total is checked against the others'.
    const [org] = await sql`select 1 from organizations where id = ${input.orgId} for no key update`;
    if (!org) throw new BillingError("not_found", `no organization ${input.orgId}`);
    const requestFingerprint = fingerprint({
      amount: input.amount,
      description: input.description,
      corrects: input.correctsInvoiceId ?? null,
    });
    const [existing] = await sql<{ id: string; request_fingerprint: string | null }[]>`
      select id, request_fingerprint from invoice_adjustments where org_id = ${input.orgId} and idempotency_key = ${input.idempotencyKey}`;
    if (existing) {
      if (existing.request_fingerprint !== requestFingerprint)
        throw new BillingError(
          "idempotency_key_reused",
          "this idempotency key was already used for a different adjustment",
        );
      return { id: existing.id, created: false };
    }
    if (input.correctsInvoiceId) {
      // Only an issued invoice of this same organization can be corrected.
      const [invoice] =
        await sql`select 1 from invoices where id = ${input.correctsInvoiceId} and org_id = ${input.orgId} and status <> 'draft'`;
      if (!invoice)
        throw new BillingError("not_found", `no invoice ${input.correctsInvoiceId} for organization ${input.orgId}`, {
          details: { param: "corrects_invoice_id" },
        });
    }
    const [queued] = await sql<{ size: string }[]>`
      select coalesce(sum(abs(amount)), 0)::text as size from invoice_adjustments
      where org_id = ${input.orgId} and applied_invoice_id is null`;
    const size = BigInt(queued?.size ?? 0) + (input.amount < 0n ? -input.amount : input.amount);
    if (size > MAX_QUEUED_ADJUSTMENTS_NANO_USD)
      throw new BillingError(
        "invalid_request",
        `the organization's queued adjustments would come to more than ${MAX_QUEUED_ADJUSTMENTS_NANO_USD / 1_000_000_000n} USD in size (credits and charges alike); wait for its next invoice`,
        { details: { param: "amount" } },
      );
    if (input.amount < 0n) {
      const [credits] = await sql<{ total: string }[]>`
        select (coalesce((select balance from ledger_accounts where id = ${orgCreditsAccount(input.orgId)}), 0)
                + coalesce((select -sum(amount) from invoice_adjustments
                            where org_id = ${input.orgId} and applied_invoice_id is null and amount < 0), 0))::text as total`;
      if (BigInt(credits?.total ?? 0) - input.amount > MAX_ORG_CREDITS_NANO_USD)
        throw new BillingError(
          "invalid_request",
          `the organization's credits with those queued would come to more than ${MAX_ORG_CREDITS_NANO_USD / 1_000_000_000n} USD`,
          { details: { param: "amount" } },
        );
    }
    const [row] = await sql<{ id: string }[]>`
      insert into invoice_adjustments (id, org_id, amount, description, corrects_invoice_id, idempotency_key, request_fingerprint, created_at)
      values (${newId("adj")}, ${input.orgId}, ${input.amount.toString()}, ${input.description}, ${input.correctsInvoiceId ?? null},
              ${input.idempotencyKey}, ${requestFingerprint}, ${now})
      returning id`;
    if (!row) throw new Error("insert into invoice_adjustments returned no row");
    return { id: row.id, created: true };
  });
}
