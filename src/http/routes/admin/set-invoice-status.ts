import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { setInvoiceStatus } from "../../../billing/invoices/set-invoice-status.js";
import { billingContext, type AppEnv } from "../../context.js";
import { requiresKey } from "../access.js";
import { errorResponses, jsonResponse } from "../../schemas.js";
import { InvoiceJson, invoiceJson } from "../billing/schemas.js";

export const setInvoiceStatusRoute = createRoute({
  operationId: "setInvoiceStatus",
  ...requiresKey({
    scope: "admin",
    area: "admin",
    description:
      "Only an open invoice changes status (409 `conflict` otherwise). An invoice with credit notes cannot be voided (409 `conflict`): a void would forgive what the notes already gave back.",
  }),
  method: "post",
  path: "/v1/admin/invoices/{id}/{action}",
  summary: "Mark an open invoice paid, or void it",
  request: { params: z.object({ id: z.string().max(64), action: z.enum(["pay", "void"]) }) },
  responses: { 200: jsonResponse(InvoiceJson, "The invoice"), ...errorResponses(400, 401, 403, 404, 409) },
});

export function registerSetInvoiceStatus(app: OpenAPIHono<AppEnv>) {
  app.openapi(setInvoiceStatusRoute, async (c) => {
    const { id, action } = c.req.valid("param");
    const status = action === "pay" ? "paid" : "void";
    return c.json(invoiceJson(await setInvoiceStatus(billingContext(c.get("deps")), { id, status })), 200);
  });
}
