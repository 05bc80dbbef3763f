import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { getOrganization } from "../../../billing/organizations.js";
import { resolvePeriod } from "../../../billing/periods.js";
import { usageReport, type UsageLine } from "../../../billing/usage-report.js";
import { usdFields } from "../../present.js";
import { billingContext, type AppEnv } from "../../context.js";
import { requiresKey } from "../access.js";
import { principalOrgId } from "../../middleware/auth.js";
import { errorResponses, jsonResponse } from "../../schemas.js";

const Line = {
  quantities: z.record(z.string(), z.string()).openapi({ description: "Total per meter, as exact integer strings" }),
  cost: z.number(),
  cost_usd: z.string(),
  cost_nano_usd: z.string(),
  events: z.number().int(),
};
export const UsageReportResponse = z
  .object({
    period: z.object({ label: z.string(), start: z.string(), end: z.string() }),
    currency: z.literal("USD"),
    total: z.number(),
    total_usd: z.string(),
    total_nano_usd: z.string(),
    products: z.array(
      z.object({ product: z.string(), ...Line, models: z.array(z.object({ model: z.string().nullable(), ...Line })) }),
    ),
  })
  .openapi("UsageReport");
export type UsageReportResponse = z.infer<typeof UsageReportResponse>;

const line = (l: UsageLine) => ({
  quantities: Object.fromEntries(Object.entries(l.quantities).map(([k, v]) => [k, v.toString()])),
  ...usdFields("cost", l.cost),
  events: l.events,
});

export const getUsageRoute = createRoute({
  operationId: "getUsage",
  ...requiresKey({ scope: "org", area: "billing" }),
  method: "get",
  path: "/v1/billing/usage",
  summary: "Metered usage for a period, by product and model",
  request: {
    query: z.object({
      period: z.string().max(20).default("current").openapi({
        description:
          "`current`, `previous` or `YYYY-MM` (the billing cycle starting in that month; cycles are monthly, anchored on the org's anchor day, UTC)",
      }),
    }),
  },
  responses: { 200: jsonResponse(UsageReportResponse, "Usage"), ...errorResponses(400, 401, 403) },
});

export function registerGetUsage(app: OpenAPIHono<AppEnv>) {
  app.openapi(getUsageRoute, async (c) => {
    const ctx = billingContext(c.get("deps"));
    const org = await getOrganization(ctx, { id: principalOrgId(c) });
    const period = resolvePeriod(c.req.valid("query").period, ctx.clock(), org.billingAnchorDay);
    const report = await usageReport(ctx, { orgId: org.id, period });
    return c.json(
      {
        period: { label: period.label, start: period.start.toISOString(), end: period.end.toISOString() },
        currency: "USD" as const,
        ...usdFields("total", report.total),
        products: report.products.map((p) => ({
          product: p.product,
          ...line(p),
          models: p.models.map((m) => ({ model: m.model || null, ...line(m) })),
        })),
      },
      200,
    );
  });
}
