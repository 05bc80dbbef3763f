import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { createAdjustment, MAX_QUEUED_ADJUSTMENTS_NANO_USD } from "../../../billing/invoices/create-adjustment.js";
import { billingContext, type AppEnv } from "../../context.js";
import { requiresKey } from "../access.js";
import { errorResponses, IdempotencyKeyHeader, jsonBody, jsonResponse, safeText, UsdString } from "../../schemas.js";
import { OrgIdParam } from "./schemas.js";

export const AdjustmentRequest = z
  .object({
    amount: UsdString.refine((n) => n !== 0n, "must not be zero").refine(
      (n) => (n < 0n ? -n : n) <= MAX_QUEUED_ADJUSTMENTS_NANO_USD,
      "is too large",
    ),
    description: safeText(1, 500, { trim: true }),
    corrects_invoice_id: z.string().min(1).max(64).optional(),
  })
  .strict()
  .openapi("AdjustmentRequest", { example: { amount: "-5.00", description: "Goodwill credit for the 14 Nov outage" } });
export type AdjustmentRequest = z.input<typeof AdjustmentRequest>;

export const AdjustmentResponse = z.object({ id: z.string(), replayed: z.boolean() });
export type AdjustmentResponse = z.infer<typeof AdjustmentResponse>;

export const createAdjustmentRoute = createRoute({
  operationId: "createAdjustment",
  ...requiresKey({ scope: "admin", area: "admin" }),
  method: "post",
  path: "/v1/admin/orgs/{id}/adjustments",
  summary: "Queue a correction as a line on the organization's next invoice (negative = credit)",
  request: {
    params: OrgIdParam,
    headers: z.object({ "idempotency-key": IdempotencyKeyHeader }),
    body: jsonBody(AdjustmentRequest),
  },
  responses: {
    201: jsonResponse(AdjustmentResponse, "Queued"),
    200: jsonResponse(AdjustmentResponse, "A replay"),
    ...errorResponses(400, 401, 403, 404),
  },
});

export function registerCreateAdjustment(app: OpenAPIHono<AppEnv>) {
  app.openapi(createAdjustmentRoute, async (c) => {
    const body = c.req.valid("json");
    const r = await createAdjustment(billingContext(c.get("deps")), {
      orgId: c.req.valid("param").id,
      amount: body.amount,
      description: body.description,
      correctsInvoiceId: body.corrects_invoice_id,
      idempotencyKey: c.req.valid("header")["idempotency-key"],
    });
    return c.json({ id: r.id, replayed: !r.created }, r.created ? 201 : 200);
  });
}
