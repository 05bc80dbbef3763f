import { z } from "@hono/zod-openapi";
import type { BillingDetails } from "../../../billing/documents/billing-details.js";
import { isIsoCountryCode } from "../../../billing/documents/countries.js";
import { safeText } from "../../schemas.js";

const line = (max: number) =>
  safeText(1, max)
    .refine((s) => s.trim() !== "", "must not be blank")
    .transform((s) => s.trim());
const optionalLine = (max: number) =>
  line(max)
    .nullable()
    .optional()
    .transform((s) => (s ? s : null));

export const BillingDetailsRequest = z
  .object({
    legal_name: line(200),
    address_lines: z.array(line(200)).min(1).max(3).openapi({ description: "One to three lines" }),
    city: line(100),
    postal_code: optionalLine(20),
    country: z
      .string()
      .length(2)
      .transform((s) => s.toUpperCase())
      .refine(isIsoCountryCode, "must be an ISO 3166-1 alpha-2 country code")
      .openapi({ example: "DE", description: "ISO 3166-1 alpha-2" }),
    tax_id: optionalLine(64).openapi({ description: "Printed as given (VAT id, EIN, GSTIN…); not checked" }),
    invoice_email: z.email().max(254).nullable().optional().openapi({ example: "ap@example.com" }),
  })
  .strict()
  .openapi("BillingDetailsRequest", {
    example: {
      legal_name: "Example GmbH",
      address_lines: ["Musterstraße 1"],
      city: "Berlin",
      postal_code: "10115",
      country: "DE",
      tax_id: "DE123456789",
      invoice_email: "ap@example.com",
    },
  });
export type BillingDetailsRequest = z.input<typeof BillingDetailsRequest>;

export const BillingDetailsResponse = z
  .object({
    legal_name: z.string(),
    address_lines: z.array(z.string()),
    city: z.string(),
    postal_code: z.string().nullable(),
    country: z.string(),
    tax_id: z.string().nullable(),
    invoice_email: z.string().nullable(),
    updated_at: z.string(),
  })
  .openapi("BillingDetails");
export type BillingDetailsResponse = z.infer<typeof BillingDetailsResponse>;

export function billingDetailsJson(d: BillingDetails & { updatedAt: Date }): BillingDetailsResponse {
  return {
    legal_name: d.legalName,
    address_lines: d.addressLines,
    city: d.city,
    postal_code: d.postalCode,
    country: d.country,
    tax_id: d.taxId,
    invoice_email: d.invoiceEmail,
    updated_at: d.updatedAt.toISOString(),
  };
}
