import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { parseExportPeriod } from "../../../billing/exports/export-period.js";
import { transactionsForExport } from "../../../billing/exports/transactions-export.js";
import { billingContext, type AppEnv } from "../../context.js";
import { csvExport, textCell } from "../../csv-export.js";
import { principalOrgId } from "../../middleware/auth.js";
import { errorResponses } from "../../schemas.js";
import { requiresKey } from "../access.js";
import { csvResponse, ExportPeriodQuery, fileDate, usdCells } from "./export-schemas.js";

export const exportTransactionsRoute = createRoute({
  operationId: "exportTransactions",
  ...requiresKey({
    scope: "org",
    area: "billing",
    description:
      "The organization's ledger transactions created in [start, end), in the order they committed (oldest first), as `GET /v1/billing/transactions` shows them: `id, created_at, kind, amount_usd, amount_nano_usd, description, metadata` (`amount`: the net effect on the balance, negative for spending; `metadata` as JSON text).",
  }),
  method: "get",
  path: "/v1/billing/exports/transactions.csv",
  summary: "Ledger history for a period, as CSV",
  request: { query: z.object(ExportPeriodQuery) },
  responses: { 200: csvResponse("Ledger transactions"), ...errorResponses(400, 401, 403, 429) },
});

export function registerExportTransactions(app: OpenAPIHono<AppEnv>) {
  app.openapi(exportTransactionsRoute, async (c) => {
    const ctx = billingContext(c.get("deps"));
    const period = parseExportPeriod(c.req.valid("query"));
    return csvExport(c, {
      filename: `transactions-${fileDate(period.start)}-${fileDate(period.end)}.csv`,
      columns: ["id", "created_at", "kind", "amount_usd", "amount_nano_usd", "description", "metadata"],
      rows: transactionsForExport(ctx, { orgId: principalOrgId(c), period }),
      cells: (t) => [
        t.id,
        t.createdAt.toISOString(),
        t.kind,
        ...usdCells(t.amount),
        textCell(t.description),
        textCell(JSON.stringify(t.metadata)),
      ],
    });
  });
}
