import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { getOrganization } from "../../../billing/organizations.js";
import { resolvePeriod } from "../../../billing/periods.js";
import {
  USAGE_DIMENSIONS,
  usageReport,
  type UsageDimension,
  type UsageGroupLine,
  type UsageLine,
} from "../../../billing/usage-report.js";
import { usdFields } from "../../present.js";
import type { AppEnv } from "../../context.js";
import { readMostly } from "../../read-mostly.js";
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
const Group = z
  .object({
    product: z.string().optional(),
    model: z.string().nullable().optional(),
    key: z
      .string()
      .nullable()
      .optional()
      .openapi({ description: "The API key id the usage was attributed to; null: none" }),
    project: z
      .string()
      .nullable()
      .optional()
      .openapi({ description: "The project the usage was attributed to; null: none" }),
    ...Line,
  })
  .openapi("UsageGroup");

/** `group_by`: a comma-separated list of distinct dimensions. */
const GroupBy = z
  .string()
  .max(100)
  .transform((v, ctx) => {
    const dims = v.split(",");
    for (const d of dims) {
      if (!(USAGE_DIMENSIONS as readonly string[]).includes(d)) {
        ctx.addIssue({
          code: "custom",
          message: `group_by takes a comma-separated list of ${USAGE_DIMENSIONS.join(", ")}`,
        });
        return z.NEVER;
      }
    }
    if (new Set(dims).size !== dims.length) {
      ctx.addIssue({ code: "custom", message: "group_by names a dimension twice" });
      return z.NEVER;
    }
    return dims as UsageDimension[];
  })
  .optional()
  .openapi({
    type: "string",
    description:
      "Group the period's usage by any of `product`, `model`, `key`, `project`, comma-separated (e.g. `key,project`)",
    example: "key,project",
  });

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
    group_by: z
      .array(z.enum(USAGE_DIMENSIONS))
      .optional()
      .openapi({ description: "Present when grouped (`group_by`)" }),
    groups: z.array(Group).optional().openapi({
      description:
        "With `group_by`: the period's usage per combination of the dimensions asked for; they sum to the total",
    }),
    granularity: z.literal("day").optional(),
    days: z
      .array(z.object({ date: z.string(), ...Line, groups: z.array(Group).optional() }))
      .optional()
      .openapi({
        description:
          "With `granularity=day`: one bucket per UTC day of the period, empty days included; they sum to the total. With `group_by`, each day is grouped too",
      }),
  })
  .openapi("UsageReport");
export type UsageReportResponse = z.infer<typeof UsageReportResponse>;

const line = (l: UsageLine) => ({
  quantities: Object.fromEntries(Object.entries(l.quantities).map(([k, v]) => [k, v.toString()])),
  ...usdFields("cost", l.cost),
  events: l.events,
});

const groupJson = (g: UsageGroupLine) => ({
  ...("product" in g ? { product: g.product } : {}),
  ...("model" in g ? { model: g.model || null } : {}),
  ...("key" in g ? { key: g.key } : {}),
  ...("project" in g ? { project: g.project } : {}),
  ...line(g),
});

export const getUsageRoute = createRoute({
  operationId: "getUsage",
  ...requiresKey({ scope: "org", area: "billing" }),
  method: "get",
  path: "/v1/billing/usage",
  summary: "Metered usage for a period, by product and model; optionally grouped and in daily buckets",
  request: {
    query: z.object({
      period: z.string().max(20).default("current").openapi({
        description:
          "`current`, `previous` or `YYYY-MM` (the billing cycle starting in that month; cycles are monthly, anchored on the org's anchor day, UTC)",
      }),
      group_by: GroupBy,
      granularity: z.enum(["day"]).optional().openapi({ description: "`day`: daily buckets (UTC) for the period" }),
    }),
  },
  responses: { 200: jsonResponse(UsageReportResponse, "Usage"), ...errorResponses(400, 401, 403) },
});

export function registerGetUsage(app: OpenAPIHono<AppEnv>) {
  app.openapi(getUsageRoute, async (c) => {
    const query = c.req.valid("query");
    const { period, report } = await readMostly(c, principalOrgId(c), async (ctx) => {
      const org = await getOrganization(ctx, { id: principalOrgId(c) });
      const period = resolvePeriod(query.period, ctx.clock(), org.billingAnchorDay);
      const report = await usageReport(ctx, {
        orgId: org.id,
        period,
        groupBy: query.group_by,
        granularity: query.granularity,
      });
      return { period, report };
    });
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
        ...(query.group_by ? { group_by: query.group_by, groups: (report.groups ?? []).map(groupJson) } : {}),
        ...(query.granularity
          ? {
              granularity: query.granularity,
              days: (report.days ?? []).map((d) => ({
                date: d.date,
                ...line(d),
                ...(d.groups ? { groups: d.groups.map(groupJson) } : {}),
              })),
            }
          : {}),
      },
      200,
    );
  });
}
