import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { createOrganizationOnce } from "../../../billing/organizations.js";
import { billingContext, type AppEnv } from "../../context.js";
import { requiresKey } from "../access.js";
import { errorResponses, IdempotencyKeyHeader, jsonBody, jsonResponse, safeText } from "../../schemas.js";
import { OrgResponse, orgJson } from "./schemas.js";

export const CreateOrgRequest = z
  .object({
    name: safeText(1, 200, { trim: true }),
    billing_anchor_day: z
      .number()
      .int()
      .min(1)
      .max(28)
      .optional()
      .openapi({ description: "Day of the month each billing cycle starts (UTC); default 1" }),
    referral_code: z.string().trim().min(1).max(64).optional().openapi({
      description:
        "The referral code (GET /v1/billing/referrals) of the org that referred this one: links the two once, for good. Unknown code: 400, nothing created",
    }),
  })
  .strict()
  .openapi("CreateOrgRequest", { example: { name: "Acme AI", billing_anchor_day: 1 } });
export type CreateOrgRequest = z.input<typeof CreateOrgRequest>;

export const createOrgRoute = createRoute({
  operationId: "createOrg",
  ...requiresKey({
    scope: "admin",
    area: "admin",
    description:
      "With an Idempotency-Key, a retry returns the organization the key made (200, Idempotent-Replayed: true) and makes no second one; the same key with another name, anchor day or referral code: 409.",
  }),
  method: "post",
  path: "/v1/admin/orgs",
  summary: "Create an organization",
  request: {
    headers: z.object({ "idempotency-key": IdempotencyKeyHeader.optional() }),
    body: jsonBody(CreateOrgRequest),
  },
  responses: {
    201: jsonResponse(OrgResponse, "The new organization"),
    200: jsonResponse(OrgResponse, "The organization an earlier request with the same key made"),
    ...errorResponses(400, 401, 403, 409),
  },
});

export function registerCreateOrg(app: OpenAPIHono<AppEnv>) {
  app.openapi(createOrgRoute, async (c) => {
    const body = c.req.valid("json");
    const { org, created } = await createOrganizationOnce(billingContext(c.get("deps")), {
      name: body.name,
      billingAnchorDay: body.billing_anchor_day,
      ...(body.referral_code !== undefined ? { referralCode: body.referral_code } : {}),
      idempotencyKey: c.req.valid("header")["idempotency-key"],
    });
    if (!created) {
      c.header("Idempotent-Replayed", "true");
      return c.json(orgJson(org), 200);
    }
    return c.json(orgJson(org), 201);
  });
}
