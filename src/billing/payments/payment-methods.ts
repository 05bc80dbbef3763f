import type { TransactionSql } from "../../db/client.js";
import { newId } from "../../ids.js";
import type { BillingContext, TransactionContext } from "../context.js";
import type { LockedCustomer } from "./customers.js";

/** What we keep of a card: exactly what the API may show. Never the number, never a token. */
export type Card = { brand: string; last4: string; expMonth: number; expYear: number };

export type PaymentMethodView = {
  id: string;
  brand: string;
  last4: string;
  expMonth: number;
  expYear: number;
  isDefault: boolean;
};

/**
 * Saves a card attached to the customer, or updates it (payment_method.attached / .updated).
 * Call with the customer locked (lockCustomer). An event older than the newest one applied to
 * this card changes nothing ("stale"), and a detached card stays detached: the processor never
 * re-attaches a detached payment method, so a late `attached` must not bring it back.
 */
export async function saveCard(
  ctx: TransactionContext,
  input: { customer: LockedCustomer; processorId: string; card: Card; eventAt: Date },
): Promise<"saved" | "stale"> {
  const { customer, processorId, card, eventAt } = input;
  const tx = ctx.sql;
  const now = ctx.clock();
  // The customer's default may have been announced before this card reached us.
  const isDefault = customer.defaultPaymentMethod === processorId;
  const rows = await tx`
    insert into payment_methods (id, org_id, processor_id, brand, last4, exp_month, exp_year, is_default, processor_event_at, created_at, updated_at)
    values (${newId("pm")}, ${customer.orgId}, ${processorId}, ${card.brand}, ${card.last4}, ${card.expMonth}, ${card.expYear},
            ${isDefault}, ${eventAt}, ${now}, ${now})
    on conflict (processor_id) do update set
      brand = excluded.brand, last4 = excluded.last4, exp_month = excluded.exp_month, exp_year = excluded.exp_year,
      processor_event_at = excluded.processor_event_at, updated_at = excluded.updated_at
    where payment_methods.org_id = excluded.org_id
      and payment_methods.detached_at is null
      and payment_methods.processor_event_at <= excluded.processor_event_at
    returning 1`;
  return rows.length > 0 ? "saved" : "stale";
}

/**
 * Removes a card from the org's list (payment_method.detached). Final: the row stays as a
 * tombstone (also written when the detach arrives before the attach) so nothing revives it.
 */
export async function detachCard(
  ctx: TransactionContext,
  input: { customer: LockedCustomer; processorId: string; card: Card; eventAt: Date },
): Promise<"detached" | "stale"> {
  const { customer, processorId, card, eventAt } = input;
  const tx = ctx.sql;
  const now = ctx.clock();
  const rows = await tx`
    insert into payment_methods (id, org_id, processor_id, brand, last4, exp_month, exp_year, is_default, processor_event_at,
                                 detached_at, created_at, updated_at)
    values (${newId("pm")}, ${customer.orgId}, ${processorId}, ${card.brand}, ${card.last4}, ${card.expMonth}, ${card.expYear},
            false, ${eventAt}, ${now}, ${now}, ${now})
    on conflict (processor_id) do update set
      is_default = false, detached_at = excluded.detached_at, processor_event_at = excluded.processor_event_at, updated_at = excluded.updated_at
    where payment_methods.org_id = excluded.org_id and payment_methods.detached_at is null
    returning 1`;
  return rows.length > 0 ? "detached" : "stale";
}

/**
 * Follows the customer's invoice_settings.default_payment_method (customer.updated). The
 * pointer is kept on the customer, so a card that arrives later still becomes the default; an
 * event older than the newest applied one is ignored. Clearing before setting keeps the partial
 * unique index (one default per org) satisfied at every statement.
 */
export async function setDefaultCard(
  ctx: TransactionContext,
  input: { customer: LockedCustomer; processorId: string | null; eventAt: Date },
): Promise<"default_changed" | "stale"> {
  const { customer, processorId, eventAt } = input;
  const tx = ctx.sql;
  const now = ctx.clock();
  if (customer.defaultSetAt && customer.defaultSetAt > eventAt) return "stale";
  await tx`update processor_customers set default_payment_method = ${processorId}, default_set_at = ${eventAt} where org_id = ${customer.orgId}`;
  await tx`
    update payment_methods set is_default = false, updated_at = ${now}
    where org_id = ${customer.orgId} and is_default and processor_id is distinct from ${processorId}`;
  if (processorId) {
    await tx`
      update payment_methods set is_default = true, updated_at = ${now}
      where org_id = ${customer.orgId} and processor_id = ${processorId} and detached_at is null and not is_default`;
  }
  return "default_changed";
}

/** The org's saved cards, default first, then oldest first. */
export async function listPaymentMethods(ctx: BillingContext, input: { orgId: string }): Promise<PaymentMethodView[]> {
  const { orgId } = input;
  const rows = await ctx.sql<
    { id: string; brand: string; last4: string; exp_month: number; exp_year: number; is_default: boolean }[]
  >`
    select id, brand, last4, exp_month, exp_year, is_default from payment_methods
    where org_id = ${orgId} and detached_at is null
    order by is_default desc, created_at, id`;
  return rows.map((r) => ({
    id: r.id,
    brand: r.brand,
    last4: r.last4,
    expMonth: r.exp_month,
    expYear: r.exp_year,
    isDefault: r.is_default,
  }));
}

/** The processor sends 4-digit years; the API shows "MM/YY" as on the card itself. */
export function formatExpiry(month: number, year: number): string {
  return `${String(month).padStart(2, "0")}/${String(year % 100).padStart(2, "0")}`;
}

/** The org a card belongs to, for a detach event that no longer names its customer. */
export async function orgOfCard(tx: TransactionSql, processorId: string): Promise<string | null> {
  const [row] = await tx<{ org_id: string }[]>`select org_id from payment_methods where processor_id = ${processorId}`;
  return row?.org_id ?? null;
}
