import type { TransactionSql } from "../../db/client.js";
import { BillingError } from "../../errors.js";
import type { BillingContext } from "../context.js";
import { isIsoCountryCode } from "./countries.js";

/** What an organization wants printed on its invoices and credit notes (PUT /v1/billing/details). */
export type BillingDetails = {
  legalName: string;
  addressLines: string[];
  city: string;
  postalCode: string | null;
  /** ISO 3166-1 alpha-2, upper case. */
  country: string;
  /** As the customer gave it: formats differ by country and are not checked. */
  taxId: string | null;
  invoiceEmail: string | null;
};

/**
 * The details as a document keeps them (invoices.billing_details, credit_notes.billing_details):
 * plain JSON in the API's field names, taken when the document is issued and never changed after.
 */
export type BillingDetailsSnapshot = {
  legal_name: string;
  address_lines: string[];
  city: string;
  postal_code: string | null;
  country: string;
  tax_id: string | null;
  invoice_email: string | null;
};

type DetailsRow = {
  legal_name: string;
  address_lines: string[];
  city: string;
  postal_code: string | null;
  country: string;
  tax_id: string | null;
  invoice_email: string | null;
  updated_at: Date;
};

const toDetails = (r: DetailsRow): BillingDetails & { updatedAt: Date } => ({
  legalName: r.legal_name,
  addressLines: r.address_lines,
  city: r.city,
  postalCode: r.postal_code,
  country: r.country,
  taxId: r.tax_id,
  invoiceEmail: r.invoice_email,
  updatedAt: r.updated_at,
});

export function snapshotOf(d: BillingDetails): BillingDetailsSnapshot {
  return {
    legal_name: d.legalName,
    address_lines: [...d.addressLines],
    city: d.city,
    postal_code: d.postalCode,
    country: d.country,
    tax_id: d.taxId,
    invoice_email: d.invoiceEmail,
  };
}

/** The org's current details, or null when it never set any. */
export async function getBillingDetails(
  ctx: BillingContext,
  input: { orgId: string },
): Promise<(BillingDetails & { updatedAt: Date }) | null> {
  const [row] = await ctx.sql<DetailsRow[]>`select * from org_billing_details where org_id = ${input.orgId}`;
  return row ? toDetails(row) : null;
}

/**
 * Replaces the org's details. Documents issued from now on print them; those issued before keep
 * the snapshot they were issued with.
 */
export async function setBillingDetails(
  ctx: BillingContext,
  input: { orgId: string; details: BillingDetails },
): Promise<BillingDetails & { updatedAt: Date }> {
  const d = input.details;
  const country = d.country.toUpperCase();
  if (!isIsoCountryCode(country))
    throw new BillingError("invalid_request", `country ${d.country} is not an ISO 3166-1 alpha-2 code`, {
      details: { param: "country" },
    });
  const now = ctx.clock();
  const [row] = await ctx.sql<DetailsRow[]>`
    insert into org_billing_details (org_id, legal_name, address_lines, city, postal_code, country, tax_id, invoice_email, updated_at)
    values (${input.orgId}, ${d.legalName}, ${d.addressLines}, ${d.city}, ${d.postalCode}, ${country}, ${d.taxId}, ${d.invoiceEmail}, ${now})
    on conflict (org_id) do update set legal_name = excluded.legal_name, address_lines = excluded.address_lines,
      city = excluded.city, postal_code = excluded.postal_code, country = excluded.country, tax_id = excluded.tax_id,
      invoice_email = excluded.invoice_email, updated_at = excluded.updated_at
    returning *`;
  if (!row) throw new Error("upsert into org_billing_details returned no row");
  return toDetails(row);
}

/** The snapshot a document issued now takes, read in the issuing transaction; null when none are set. */
export async function billingDetailsSnapshot(
  tx: TransactionSql,
  orgId: string,
): Promise<BillingDetailsSnapshot | null> {
  const [row] = await tx<DetailsRow[]>`select * from org_billing_details where org_id = ${orgId}`;
  return row ? snapshotOf(toDetails(row)) : null;
}
