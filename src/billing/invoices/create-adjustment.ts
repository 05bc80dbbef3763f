import { BillingError } from "../../errors.js";
import { newId } from "../../ids.js";
import { fingerprint } from "../../ledger/post-transaction.js";
import type { BillingContext } from "../context.js";

export type AdjustmentInput = {
  orgId: string;
  amount: bigint;
  description: string;
  correctsInvoiceId?: string;
  idempotencyKey: string;
};

/** Queues a correction for the org's next invoice (negative amount = a credit to the customer). */
export async function createAdjustment(
  ctx: BillingContext,
  input: AdjustmentInput,
): Promise<{ id: string; created: boolean }> {
  const { sql } = ctx;
  const now = ctx.clock();
  const [org] = await sql`select 1 from organizations where id = ${input.orgId}`;
  if (!org) throw new BillingError("not_found", `no organization ${input.orgId}`);
  if (input.correctsInvoiceId) {
    // Only an issued invoice of this same organization can be corrected.
    const [invoice] =
      await sql`select 1 from invoices where id = ${input.correctsInvoiceId} and org_id = ${input.orgId} and status <> 'draft'`;
    if (!invoice)
      throw new BillingError("not_found", `no invoice ${input.correctsInvoiceId} for organization ${input.orgId}`, {
        details: { param: "corrects_invoice_id" },
      });
  }
  const requestFingerprint = fingerprint({
    amount: input.amount,
    description: input.description,
    corrects: input.correctsInvoiceId ?? null,
  });
  const [row] = await sql<{ id: string }[]>`
    insert into invoice_adjustments (id, org_id, amount, description, corrects_invoice_id, idempotency_key, request_fingerprint, created_at)
    values (${newId("adj")}, ${input.orgId}, ${input.amount.toString()}, ${input.description}, ${input.correctsInvoiceId ?? null},
            ${input.idempotencyKey}, ${requestFingerprint}, ${now})
    on conflict (org_id, idempotency_key) do nothing returning id`;
  if (row) return { id: row.id, created: true };
  const [existing] = await sql<{ id: string; request_fingerprint: string | null }[]>`
    select id, request_fingerprint from invoice_adjustments where org_id = ${input.orgId} and idempotency_key = ${input.idempotencyKey}`;
  if (!existing) throw new Error("adjustment key conflict without a row: impossible under read committed");
  if (existing.request_fingerprint !== requestFingerprint) {
    throw new BillingError(
      "idempotency_key_reused",
      "this idempotency key was already used for a different adjustment",
    );
  }
  return { id: existing.id, created: false };
}
