import type { TransactionSql } from "../../db/client.js";
import { BillingError } from "../../errors.js";
import { withTransaction, type BillingContext } from "../context.js";
import { callProcessor, type ProcessorClient } from "./processor-client.js";

/** A context for verbs that call the card processor. */
export type CardContext = BillingContext & { processor: ProcessorClient };

export type CustomerLink = { orgId: string; linkedAt: Date };

/**
 * Links an organization to its processor customer (made by our billing portal when the org
 * first pays). This is how every processor event finds its organization: payment metadata is
 * not trusted for that, since anything with processor access can write it, while a link is an
 * explicit operator act. A link is permanent: linking the same pair again is a no-op
 * (`created: false`); relinking either side to something else is a 409.
 */
export async function linkProcessorCustomer(
  ctx: BillingContext,
  input: { orgId: string; customerId: string },
): Promise<{ link: CustomerLink; created: boolean }> {
  const { orgId, customerId } = input;
  const now = ctx.clock();
  return withTransaction(ctx, async ({ sql: tx }) => {
    const [org] = await tx`select 1 from organizations where id = ${orgId}`;
    if (!org) throw new BillingError("not_found", `no organization ${orgId}`);
    const inserted = await tx<{ linked_at: Date }[]>`
      insert into processor_customers (org_id, customer_id, linked_at) values (${orgId}, ${customerId}, ${now})
      on conflict do nothing returning linked_at`;
    if (inserted[0]) return { link: { orgId, linkedAt: inserted[0].linked_at }, created: true };
    // Lost to an existing row (or a concurrent insert, which we waited for): which one?
    const [existing] = await tx<{ org_id: string; customer_id: string; linked_at: Date }[]>`
      select org_id, customer_id, linked_at from processor_customers where org_id = ${orgId} or customer_id = ${customerId}`;
    if (existing && existing.org_id === orgId && existing.customer_id === customerId) {
      return { link: { orgId, linkedAt: existing.linked_at }, created: false };
    }
    // The messages never echo the processor id: it stays server side, even for operators' clients.
    throw new BillingError(
      "conflict",
      existing?.org_id === orgId
        ? "this organization is already linked to another processor customer; links are permanent"
        : "this processor customer is already linked to another organization",
      { details: { param: "customer_id" } },
    );
  });
}

export type LockedCustomer = { orgId: string; defaultPaymentMethod: string | null; defaultSetAt: Date | null };

/**
 * The organization behind a processor customer, its row locked for the rest of the transaction:
 * every saved-card event of one customer runs one at a time, so the default flag can never be
 * set on two cards at once. Null for a customer nobody linked.
 */
export async function lockCustomer(
  tx: TransactionSql,
  by: { customerId: string } | { orgId: string },
): Promise<LockedCustomer | null> {
  const [row] = await tx<{ org_id: string; default_payment_method: string | null; default_set_at: Date | null }[]>`
    select org_id, default_payment_method, default_set_at from processor_customers
    where ${"customerId" in by ? tx`customer_id = ${by.customerId}` : tx`org_id = ${by.orgId}`}
    for update`;
  return row
    ? { orgId: row.org_id, defaultPaymentMethod: row.default_payment_method, defaultSetAt: row.default_set_at }
    : null;
}

/**
 * The org's processor customer, created and linked on first use. One per org however many
 * requests race: they queue on a per-org lock, and the first creates the customer (with an
 * idempotency key of its org, so a retry after a lost answer gets the same customer back) and
 * links it in the same transaction; the others then find the link. The lock is held across the
 * processor call, once in an org's life.
 */
export async function ensureProcessorCustomer(ctx: CardContext, input: { orgId: string }): Promise<string> {
  const { orgId } = input;
  const [linked] = await ctx.sql<{ customer_id: string }[]>`
    select customer_id from processor_customers where org_id = ${orgId}`;
  if (linked) return linked.customer_id;
  return withTransaction(ctx, async ({ sql: tx }) => {
    await tx`select pg_advisory_xact_lock(hashtextextended(${`processor-customer:${orgId}`}, 0))`;
    const [again] = await tx<{ customer_id: string }[]>`
      select customer_id from processor_customers where org_id = ${orgId}`;
    if (again) return again.customer_id;
    const [org] = await tx<{ name: string }[]>`select name from organizations where id = ${orgId}`;
    if (!org) throw new BillingError("not_found", `no organization ${orgId}`);
    const customer = await callProcessor("create the customer", () =>
      ctx.processor.customers.create(
        { name: org.name, metadata: { org_id: orgId } },
        { idempotencyKey: `hanzo-customer-${orgId}` },
      ),
    );
    await tx`
      insert into processor_customers (org_id, customer_id, linked_at) values (${orgId}, ${customer.id}, ${ctx.clock()})`;
    return customer.id;
  });
}
