import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { grantCredits, type CreditGrant } from "../../../billing/grants.js";
import { usdFields } from "../../present.js";
import { billingContext, type AppEnv } from "../../context.js";
import { requiresKey } from "../access.js";
import {
  errorResponses,
  IdempotencyKeyHeader,
  jsonBody,
  jsonResponse,
  PositiveUsdString,
  safeText,
  Timestamp,
} from "../../schemas.js";
import { OrgIdParam } from "./schemas.js";

export const GrantCreditsRequest = z
  .object({
    amount: PositiveUsdString,
    reason: safeText(1, 500, { trim: true }),
    expires_at: Timestamp.optional().openapi({ example: "2027-01-01T00:00:00Z" }),
  })
  .strict()
  .openapi("GrantCreditsRequest", { example: { amount: "25.00", reason: "Welcome credit" } });
export type GrantCreditsRequest = z.input<typeof GrantCreditsRequest>;

export const CreditGrantResponse = z
  .object({
    id: z.string(),
    org_id: z.string(),
    transaction_id: z.string(),
    amount: z.number(),
    amount_usd: z.string().openapi({ description: "Exact decimal USD" }),
    amount_nano_usd: z.string(),
    reason: z.string(),
    expires_at: z.string().nullable(),
    created_at: z.string(),
  })
  .openapi("CreditGrant");
export type CreditGrantResponse = z.infer<typeof CreditGrantResponse>;

function grantJson(g: CreditGrant): CreditGrantResponse {
  return {
    id: g.id,
    org_id: g.orgId,
    transaction_id: g.transactionId,
    ...usdFields("amount", g.amount),
    reason: g.reason,
    expires_at: g.expiresAt?.toISOString() ?? null,
    created_at: g.createdAt.toISOString(),
  };
}

export const grantCreditsRoute = createRoute({
  operationId: "grantCredits",
  ...requiresKey({
    scope: "admin",
    area: "admin",
    description:
      "Idempotent by the Idempotency-Key header: a retry returns the first grant (200, Idempotent-Replayed: true) and credits nothing more.",
  }),
  method: "post",
  path: "/v1/admin/orgs/{id}/credits",
  summary: "Grant credits to an organization",
  request: {
    params: OrgIdParam,
    headers: z.object({ "idempotency-key": IdempotencyKeyHeader }),
    body: jsonBody(GrantCreditsRequest),
  },
  responses: {
    201: jsonResponse(CreditGrantResponse, "Credits granted"),
    200: jsonResponse(CreditGrantResponse, "A replay of an earlier grant with the same key"),
    ...errorResponses(400, 401, 403, 404, 409),
  },
});

export function registerGrantCredits(app: OpenAPIHono<AppEnv>) {
  app.openapi(grantCreditsRoute, async (c) => {
    const body = c.req.valid("json");
    const { grant, created } = await grantCredits(billingContext(c.get("deps")), {
      orgId: c.req.valid("param").id,
      amount: body.amount,
      reason: body.reason,
      expiresAt: body.expires_at ? new Date(body.expires_at) : null,
      idempotencyKey: c.req.valid("header")["idempotency-key"],
    });
    if (!created) {
      c.header("Idempotent-Replayed", "true");
      return c.json(grantJson(grant), 200);
    }
    return c.json(grantJson(grant), 201);
  });
}
