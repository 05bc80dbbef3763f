import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { getInvoice, listInvoices, type Invoice } from "../../../billing/invoices.js";
import { formatUsd, formatUsdNumber } from "../../../ledger/money.js";
import type { AppEnv } from "../../context.js";
import { principalOrgId, requireScope } from "../../middleware/auth.js";
import { errorResponses, jsonResponse, Limit } from "../../schemas.js";

const usd = (nano: bigint) => ({ number: formatUsdNumber(nano), exact: formatUsd(nano), nano: nano.toString() });

export const InvoiceLineJson = z
  .object({
    kind: z.enum(["usage", "late_usage", "subscription", "adjustment"]),
    product: z.string().nullable(),
    model: z.string().nullable(),
    description: z.string(),
    quantities: z.record(z.string(), z.string()),
    amount: z.number(),
    amount_nano_usd: z.string(),
    period: z.object({ start: z.string().nullable(), end: z.string().nullable() }),
  })
  .openapi("InvoiceLine");

export const InvoiceJson = z
  .object({
    id: z.string(),
    number: z.string().openapi({ example: "INV-000123" }),
    status: z.enum(["draft", "open", "paid", "void"]),
    currency: z.literal("USD"),
    period: z.object({ start: z.string(), end: z.string() }),
    subtotal: z.number(),
    subtotal_nano_usd: z.string(),
    credits_applied: z.number(),
    credits_applied_nano_usd: z.string(),
    amount_due: z.number(),
    amount_due_nano_usd: z.string(),
    issued_at: z.string().nullable(),
    paid_at: z.string().nullable(),
    voided_at: z.string().nullable(),
    lines: z.array(InvoiceLineJson).optional(),
  })
  .openapi("Invoice");

export function invoiceJson(i: Invoice) {
  const subtotal = usd(i.subtotal);
  const applied = usd(i.creditsApplied);
  const due = usd(i.amountDue);
  return {
    id: i.id,
    number: i.number,
    status: i.status,
    currency: "USD" as const,
    period: { start: i.periodStart.toISOString(), end: i.periodEnd.toISOString() },
    subtotal: subtotal.number,
    subtotal_nano_usd: subtotal.nano,
    credits_applied: applied.number,
    credits_applied_nano_usd: applied.nano,
    amount_due: due.number,
    amount_due_nano_usd: due.nano,
    issued_at: i.issuedAt?.toISOString() ?? null,
    paid_at: i.paidAt?.toISOString() ?? null,
    voided_at: i.voidedAt?.toISOString() ?? null,
    ...(i.lines
      ? {
          lines: i.lines.map((l) => ({
            kind: l.kind,
            product: l.product,
            model: l.model,
            description: l.description,
            quantities: l.quantities,
            amount: formatUsdNumber(l.amount),
            amount_nano_usd: l.amount.toString(),
            period: { start: l.periodStart?.toISOString() ?? null, end: l.periodEnd?.toISOString() ?? null },
          })),
        }
      : {}),
  };
}

const listRoute = createRoute({
  method: "get",
  path: "/v1/billing/invoices",
  tags: ["billing"],
  summary: "The organization's invoices, newest period first",
  security: [{ bearer: [] }],
  middleware: [requireScope("org")] as const,
  request: {
    query: z.object({
      limit: Limit,
      cursor: z.string().max(64).optional().openapi({ description: "`next_cursor` from the previous page" }),
    }),
  },
  responses: {
    200: jsonResponse(
      z.object({ data: z.array(InvoiceJson), has_more: z.boolean(), next_cursor: z.string().nullable() }),
      "A page of invoices",
    ),
    ...errorResponses(400, 401, 403),
  },
});

const getRoute = createRoute({
  method: "get",
  path: "/v1/billing/invoices/{id}",
  tags: ["billing"],
  summary: "One invoice with its line items",
  security: [{ bearer: [] }],
  middleware: [requireScope("org")] as const,
  request: { params: z.object({ id: z.string().max(64) }) },
  responses: { 200: jsonResponse(InvoiceJson, "The invoice"), ...errorResponses(401, 403, 404) },
});

export function registerInvoices(app: OpenAPIHono<AppEnv>) {
  app.openapi(listRoute, async (c) => {
    const q = c.req.valid("query");
    const page = await listInvoices(c.get("deps").sql, principalOrgId(c), { limit: q.limit, before: q.cursor });
    return c.json(
      { data: page.data.map(invoiceJson), has_more: page.nextCursor !== null, next_cursor: page.nextCursor },
      200,
    );
  });
  app.openapi(getRoute, async (c) => {
    const invoice = await getInvoice(c.get("deps").sql, principalOrgId(c), c.req.valid("param").id);
    return c.json(invoiceJson(invoice), 200);
  });
}
