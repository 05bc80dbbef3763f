import type { OpenAPIHono } from "@hono/zod-openapi";
import { invoicePdf } from "../../../billing/documents/invoice-pdf.js";
import { getInvoice } from "../../../billing/invoices/get-invoice.js";
import { billingContext, type AppEnv } from "../../context.js";
import { principalOrgId } from "../../middleware/auth.js";
import { registerPdfRoute } from "./pdf-route.js";

export function registerGetInvoicePdf(app: OpenAPIHono<AppEnv>) {
  registerPdfRoute(app, {
    operationId: "getInvoicePdf",
    collection: "/v1/billing/invoices",
    summary: "One invoice as a PDF",
    description:
      "The same numbers as GET /v1/billing/invoices/{id}: period, billing details as issued, line items, subtotal, credits applied, amount due, status.",
    render: async (c, id) => {
      const invoice = await getInvoice(billingContext(c.get("deps")), { orgId: principalOrgId(c), id });
      return invoicePdf({ ...invoice, lines: invoice.lines ?? [] });
    },
  });
}
