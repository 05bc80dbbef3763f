import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { parseExportPeriod } from "../../../billing/exports/export-period.js";
import { catalogMeters } from "../../../billing/exports/meters.js";
import {
  USAGE_EXPORT_GROUPS,
  usageEventsForExport,
  usageGroupsForExport,
} from "../../../billing/exports/usage-export.js";
import {
  dimensionColumn,
  dimensionValue,
  usageDimensionForExport,
} from "../../../billing/exports/usage-dimension-export.js";
import { USAGE_DIMENSIONS, type UsageDimension, type UsageGroupLine } from "../../../billing/usage-report.js";
import type { UsageGroup } from "../../../billing/usage-rollup.js";
import { billingContext, type AppEnv } from "../../context.js";
import { csvExport, textCell, type Cell } from "../../csv-export.js";
import { principalOrgId } from "../../middleware/auth.js";
import { errorResponses } from "../../schemas.js";
import { requiresKey } from "../access.js";
import { csvResponse, ExportPeriodQuery, fileDate, usdCells } from "./export-schemas.js";

export const exportUsageRoute = createRoute({
  operationId: "exportUsage",
  ...requiresKey({
    scope: "org",
    area: "billing",
    description: [
      "The period's usage as CSV, one row per:",
      "- `group_by=day`: UTC day, product and model with usage (`date, product, model, events, quantity_<meter>…, cost_usd, cost_nano_usd`), by day; what `GET /v1/billing/usage?granularity=day&group_by=product,model` shows, without the empty days.",
      "- `group_by=product_model`: product and model (`product, model, events, quantity_<meter>…, cost_usd, cost_nano_usd`); the report's `products[].models[]`.",
      "- `group_by=product`, `model`, `key` or `project`: value of that dimension (`product` | `model` | `api_key_id` | `project`, then `events, quantity_<meter>…, cost_usd, cost_nano_usd`); the report's `groups` with the same `group_by`, row for row (an empty cell: no model, key or project).",
      "- `group_by=event`: usage event (`id, occurred_at, recorded_at, product, model, quantity_<meter>…, cost_usd, cost_nano_usd, api_key_id, project, hold_id`), oldest first.",
      "Events count by `occurred_at` in [start, end), as in the usage report, so every form totals what the report totals over the same period. One `quantity_<meter>` column per meter the catalog has (empty where the product has no such meter).",
    ].join("\n"),
  }),
  method: "get",
  path: "/v1/billing/exports/usage.csv",
  summary: "Usage for a period as CSV: by day, by product and model, or every event",
  request: {
    query: z.object({
      ...ExportPeriodQuery,
      group_by: z
        .enum([...USAGE_EXPORT_GROUPS, ...USAGE_DIMENSIONS])
        .openapi({ description: "`day`, `product_model`, `event`, or one of `product`, `model`, `key`, `project`" }),
    }),
  },
  responses: { 200: csvResponse("Usage"), ...errorResponses(400, 401, 403, 429) },
});

const quantityColumns = (meters: readonly string[]) => meters.map((m) => `quantity_${m}`);
const isDimension = (g: string): g is UsageDimension => (USAGE_DIMENSIONS as readonly string[]).includes(g);
const quantityCells = (g: Pick<UsageGroup | UsageGroupLine, "quantities">, meters: readonly string[]): Cell[] =>
  meters.map((m) => g.quantities[m]?.toString() ?? null);

export function registerExportUsage(app: OpenAPIHono<AppEnv>) {
  app.openapi(exportUsageRoute, async (c) => {
    const ctx = billingContext(c.get("deps"));
    const query = c.req.valid("query");
    const period = parseExportPeriod(query);
    const orgId = principalOrgId(c);
    const meters = await catalogMeters(ctx.sql);
    const filename = `usage-${query.group_by}-${fileDate(period.start)}-${fileDate(period.end)}.csv`;
    const quantities = quantityColumns(meters);
    const groupBy = query.group_by;
    if (isDimension(groupBy)) {
      return csvExport(c, {
        filename,
        columns: [dimensionColumn(groupBy), "events", ...quantities, "cost_usd", "cost_nano_usd"],
        rows: usageDimensionForExport(ctx, { orgId, period, dimension: groupBy }),
        cells: (g) => [
          textCell(dimensionValue(g, groupBy)),
          String(g.events),
          ...quantityCells(g, meters),
          ...usdCells(g.cost),
        ],
      });
    }
    if (groupBy === "event") {
      return csvExport(c, {
        filename,
        columns: [
          "id",
          "occurred_at",
          "recorded_at",
          "product",
          "model",
          ...quantities,
          "cost_usd",
          "cost_nano_usd",
        ].concat(["api_key_id", "project", "hold_id"]),
        rows: usageEventsForExport(ctx, { orgId, period, meters }),
        cells: (e) => [
          e.id,
          e.occurred_at,
          e.recorded_at,
          textCell(e.product),
          textCell(e.model || null),
          ...e.quantities,
          ...usdCells(e.cost),
          e.api_key_id,
          textCell(e.project),
          e.hold_id,
        ],
      });
    }
    const byDay = groupBy === "day";
    return csvExport(c, {
      filename,
      columns: [...(byDay ? ["date"] : []), "product", "model", "events", ...quantities, "cost_usd", "cost_nano_usd"],
      rows: usageGroupsForExport(ctx, { orgId, period, group: groupBy }),
      cells: (g) => [
        ...(byDay ? [g.day] : []),
        textCell(g.product),
        textCell(g.model || null),
        String(g.events),
        ...quantityCells(g, meters),
        ...usdCells(g.cost),
      ],
    });
  });
}
