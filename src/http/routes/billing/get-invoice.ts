import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { getInvoice } from "../../../billing/invoices/get-invoice.js";
import type { AppEnv } from "../../context.js";
import { readMostly } from "../../read-mostly.js";
import { requiresKey } from "../access.js";
import { principalOrgId } from "../../middleware/auth.js";
import { errorResponses, jsonResponse } from "../../schemas.js";
import { InvoiceJson, invoiceJson } from "./schemas.js";

export const getInvoiceRoute = createRoute({
  operationId: "getInvoice",
  ...requiresKey({ scope: "org", area: "billing" }),
  method: "get",
  path: "/v1/billing/invoices/{id}",
  summary: "One invoice with its line items",
  request: { params: z.object({ id: z.string().max(64) }) },
  responses: { 200: jsonResponse(InvoiceJson, "The invoice"), ...errorResponses(401, 403, 404) },
});

export function registerGetInvoice(app: OpenAPIHono<AppEnv>) {
  app.openapi(getInvoiceRoute, async (c) => {
    const invoice = await readMostly(c, principalOrgId(c), (ctx) =>
      getInvoice(ctx, {
        orgId: principalOrgId(c),
        id: c.req.valid("param").id,
      }),
    );
    return c.json(invoiceJson(invoice), 200);
  });
}
