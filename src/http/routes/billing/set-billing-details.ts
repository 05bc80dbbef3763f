import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { setBillingDetails } from "../../../billing/documents/billing-details.js";
import { billingContext, type AppEnv } from "../../context.js";
import { principalOrgId } from "../../middleware/auth.js";
import { errorResponses, jsonBody, jsonResponse } from "../../schemas.js";
import { requiresKey } from "../access.js";
import { BillingDetailsRequest, BillingDetailsResponse, billingDetailsJson } from "./details-schemas.js";

export const setBillingDetailsRoute = createRoute({
  operationId: "setBillingDetails",
  ...requiresKey({
    scope: "org",
    area: "billing",
    description:
      "Replaces the details whole. Invoices and credit notes issued from now on print them; documents issued before keep the details they were issued with.",
  }),
  method: "put",
  path: "/v1/billing/details",
  summary: "Set the billing details printed on invoices and credit notes",
  request: { body: jsonBody(BillingDetailsRequest) },
  responses: { 200: jsonResponse(BillingDetailsResponse, "The details as set"), ...errorResponses(400, 401, 403) },
});

export function registerSetBillingDetails(app: OpenAPIHono<AppEnv>) {
  app.openapi(setBillingDetailsRoute, async (c) => {
    const b = c.req.valid("json");
    const details = await setBillingDetails(billingContext(c.get("deps")), {
      orgId: principalOrgId(c),
      details: {
        legalName: b.legal_name,
        addressLines: b.address_lines,
        city: b.city,
        postalCode: b.postal_code ?? null,
        country: b.country,
        taxId: b.tax_id ?? null,
        invoiceEmail: b.invoice_email ?? null,
      },
    });
    return c.json(billingDetailsJson(details), 200);
  });
}
