import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { listInvoices } from "../../../billing/invoices/list-invoices.js";
import type { AppEnv } from "../../context.js";
import { readMostly } from "../../read-mostly.js";
import { requiresKey } from "../access.js";
import { principalOrgId } from "../../middleware/auth.js";
import { errorResponses, jsonResponse, Limit } from "../../schemas.js";
import { InvoiceJson, invoiceJson } from "./schemas.js";

export const InvoicePage = z.object({
  data: z.array(InvoiceJson),
  has_more: z.boolean(),
  next_cursor: z.string().nullable(),
});
export type InvoicePage = z.infer<typeof InvoicePage>;

export const listInvoicesRoute = createRoute({
  operationId: "listInvoices",
  ...requiresKey({ scope: "org", area: "billing" }),
  method: "get",
  path: "/v1/billing/invoices",
  summary: "The organization's invoices, newest period first",
  request: {
    query: z.object({
      limit: Limit,
      cursor: z.string().max(64).optional().openapi({ description: "`next_cursor` from the previous page" }),
    }),
  },
  responses: {
    200: jsonResponse(InvoicePage, "A page of invoices"),
    ...errorResponses(400, 401, 403),
  },
});

export function registerListInvoices(app: OpenAPIHono<AppEnv>) {
  app.openapi(listInvoicesRoute, async (c) => {
    const q = c.req.valid("query");
    const page = await readMostly(c, principalOrgId(c), (ctx) =>
      listInvoices(ctx, {
        orgId: principalOrgId(c),
        limit: q.limit,
        before: q.cursor,
      }),
    );
    return c.json(
      { data: page.data.map(invoiceJson), has_more: page.nextCursor !== null, next_cursor: page.nextCursor },
      200,
    );
  });
}
