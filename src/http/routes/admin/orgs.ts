import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { createOrganization, getOrganization, type Organization } from "../../../billing/organizations.js";
import { formatUsdNumber } from "../../../ledger/money.js";
import type { AppEnv } from "../../context.js";
import { requireScope } from "../../middleware/auth.js";
import { errorResponses, jsonBody, jsonResponse } from "../../schemas.js";

export const CreateOrgRequest = z
  .object({
    name: z.string().trim().min(1).max(200),
    billing_anchor_day: z
      .number()
      .int()
      .min(1)
      .max(28)
      .optional()
      .openapi({ description: "Day of the month each billing cycle starts (UTC); default 1" }),
  })
  .strict()
  .openapi("CreateOrgRequest");
export const OrgResponse = z
  .object({
    id: z.string().openapi({ example: "org_4fJ2kQ9x0cT1mB7rW3yZ" }),
    name: z.string(),
    low_balance_threshold: z.number(),
    low_balance_threshold_nano_usd: z.string(),
    billing_anchor_day: z.number().int(),
    created_at: z.string(),
  })
  .openapi("Organization");

export function orgJson(org: Organization) {
  return {
    id: org.id,
    name: org.name,
    low_balance_threshold: formatUsdNumber(org.lowBalanceThreshold),
    low_balance_threshold_nano_usd: org.lowBalanceThreshold.toString(),
    billing_anchor_day: org.billingAnchorDay,
    created_at: org.createdAt.toISOString(),
  };
}

const createOrgRoute = createRoute({
  method: "post",
  path: "/v1/admin/orgs",
  tags: ["admin"],
  summary: "Create an organization",
  security: [{ bearer: [] }],
  middleware: [requireScope("admin")] as const,
  request: { body: jsonBody(CreateOrgRequest) },
  responses: { 201: jsonResponse(OrgResponse, "The new organization"), ...errorResponses(400, 401, 403) },
});

const getOrgRoute = createRoute({
  method: "get",
  path: "/v1/admin/orgs/{id}",
  tags: ["admin"],
  summary: "Get an organization",
  security: [{ bearer: [] }],
  middleware: [requireScope("admin")] as const,
  request: { params: z.object({ id: z.string().max(64) }) },
  responses: { 200: jsonResponse(OrgResponse, "The organization"), ...errorResponses(401, 403, 404) },
});

export function registerAdminOrgs(app: OpenAPIHono<AppEnv>) {
  app.openapi(createOrgRoute, async (c) => {
    const { sql, clock } = c.get("deps");
    const body = c.req.valid("json");
    const org = await createOrganization(sql, {
      name: body.name,
      billingAnchorDay: body.billing_anchor_day,
      createdAt: clock(),
    });
    return c.json(orgJson(org), 201);
  });
  app.openapi(getOrgRoute, async (c) => {
    const org = await getOrganization(c.get("deps").sql, c.req.valid("param").id);
    return c.json(orgJson(org), 200);
  });
}
