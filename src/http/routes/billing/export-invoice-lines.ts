import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { parseExportPeriod } from "../../../billing/exports/export-period.js";
import { invoiceLinesForExport } from "../../../billing/exports/invoice-lines-export.js";
import { catalogMeters } from "../../../billing/exports/meters.js";
import { billingContext, type AppEnv } from "../../context.js";
import { csvExport, textCell } from "../../csv-export.js";
import { principalOrgId } from "../../middleware/auth.js";
import { errorResponses } from "../../schemas.js";
import { requiresKey } from "../access.js";
import { csvResponse, ExportPeriodQuery, fileDate, usdCells } from "./export-schemas.js";

export const exportInvoiceLinesRoute = createRoute({
  operationId: "exportInvoiceLines",
  ...requiresKey({
    scope: "org",
    area: "billing",
    description:
      "Every line of the organization's invoices (as `GET /v1/billing/invoices` lists them: open, paid or void, never a draft) whose period overlaps [start, end), oldest invoice first, one row per line: `invoice_id, invoice_number, invoice_status, invoice_period_start, invoice_period_end, issued_at, kind, product, model, description, quantity_<meter>…, amount_usd, amount_nano_usd, period_start, period_end`. An invoice's lines sum to its `subtotal`.",
  }),
  method: "get",
  path: "/v1/billing/exports/invoice-lines.csv",
  summary: "Invoice lines of the invoices overlapping a period, as CSV",
  request: { query: z.object(ExportPeriodQuery) },
  responses: { 200: csvResponse("Invoice lines"), ...errorResponses(400, 401, 403, 429) },
});

export function registerExportInvoiceLines(app: OpenAPIHono<AppEnv>) {
  app.openapi(exportInvoiceLinesRoute, async (c) => {
    const ctx = billingContext(c.get("deps"));
    const period = parseExportPeriod(c.req.valid("query"));
    const orgId = principalOrgId(c);
    const meters = await catalogMeters(ctx.sql);
    return csvExport(c, {
      filename: `invoice-lines-${fileDate(period.start)}-${fileDate(period.end)}.csv`,
      columns: [
        "invoice_id",
        "invoice_number",
        "invoice_status",
        "invoice_period_start",
        "invoice_period_end",
        "issued_at",
        "kind",
        "product",
        "model",
        "description",
        ...meters.map((m) => `quantity_${m}`),
        "amount_usd",
        "amount_nano_usd",
        "period_start",
        "period_end",
      ],
      rows: invoiceLinesForExport(ctx, { orgId, period, meters }),
      cells: (l) => [
        l.invoice_id,
        l.invoice_number,
        l.invoice_status,
        l.invoice_period_start.toISOString(),
        l.invoice_period_end.toISOString(),
        l.issued_at?.toISOString() ?? null,
        l.kind,
        textCell(l.product),
        textCell(l.model || null),
        textCell(l.description),
        ...l.quantities,
        ...usdCells(l.amount),
        l.period_start?.toISOString() ?? null,
        l.period_end?.toISOString() ?? null,
      ],
    });
  });
}
