import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { closeDueCycles, createAdjustment, setInvoiceStatus } from "../../../billing/invoices.js";
import { cancelSubscription, subscribe, type Subscription } from "../../../billing/subscriptions.js";
import { MAX_NANO_USD } from "../../../ledger/money.js";
import type { AppEnv } from "../../context.js";
import { requireScope } from "../../middleware/auth.js";
import { IdempotencyKeyHeader, errorResponses, jsonBody, jsonResponse, UsdString } from "../../schemas.js";
import { InvoiceJson, invoiceJson } from "../billing/invoices.js";

const admin = { security: [{ bearer: [] }], middleware: [requireScope("admin")], tags: ["admin"] };
const OrgParam = z.object({ id: z.string().max(64) });

const SubscriptionJson = z
  .object({
    org_id: z.string(),
    plan_id: z.string(),
    pending_plan_id: z.string().nullable().openapi({ description: "The plan that takes over at the next cycle" }),
    started_at: z.string(),
    canceled_at: z.string().nullable(),
  })
  .openapi("Subscription");
const subscriptionJson = (s: Subscription) => ({
  org_id: s.orgId,
  plan_id: s.planId,
  pending_plan_id: s.pendingPlanId,
  started_at: s.startedAt.toISOString(),
  canceled_at: s.canceledAt?.toISOString() ?? null,
});

const closeRoute = createRoute({
  ...admin,
  method: "post",
  path: "/v1/admin/cycles/close",
  summary: "Close every ended billing cycle now, for one organization or all (idempotent)",
  request: {
    body: jsonBody(
      z
        .object({
          org_id: z.string().max(64).optional(),
          end_current_cycle_now: z
            .boolean()
            .optional()
            .openapi({
              description:
                "Also end the running cycle now (needs org_id): it is invoiced, prorated, and a new cycle starts",
            }),
        })
        .strict()
        .refine((b) => !b.end_current_cycle_now || b.org_id, {
          message: "end_current_cycle_now needs org_id",
          path: ["org_id"],
        })
        .openapi("CloseCyclesRequest"),
    ),
  },
  responses: {
    200: jsonResponse(
      z.object({ invoices_created: z.number(), already_closed: z.number(), organizations: z.number() }),
      "What was closed",
    ),
    ...errorResponses(400, 401, 403, 404),
  },
});

const subscribeRoute = createRoute({
  ...admin,
  method: "put",
  path: "/v1/admin/orgs/{id}/subscription",
  summary: "Subscribe an organization to a plan (a change of plan takes effect at the next cycle)",
  request: {
    params: OrgParam,
    body: jsonBody(
      z
        .object({ plan_id: z.string().min(1).max(40) })
        .strict()
        .openapi("SubscribeRequest"),
    ),
  },
  responses: { 200: jsonResponse(SubscriptionJson, "The subscription"), ...errorResponses(400, 401, 403, 404) },
});

const cancelRoute = createRoute({
  ...admin,
  method: "delete",
  path: "/v1/admin/orgs/{id}/subscription",
  summary: "Cancel a subscription (the current cycle is still charged)",
  request: { params: OrgParam },
  responses: { 200: jsonResponse(SubscriptionJson, "The canceled subscription"), ...errorResponses(401, 403, 404) },
});

const statusRoute = createRoute({
  ...admin,
  method: "post",
  path: "/v1/admin/invoices/{id}/{action}",
  summary: "Mark an open invoice paid, or void it",
  request: { params: z.object({ id: z.string().max(64), action: z.enum(["pay", "void"]) }) },
  responses: { 200: jsonResponse(InvoiceJson, "The invoice"), ...errorResponses(400, 401, 403, 404, 409) },
});

const adjustmentRoute = createRoute({
  ...admin,
  method: "post",
  path: "/v1/admin/orgs/{id}/adjustments",
  summary: "Queue a correction as a line on the organization's next invoice (negative = credit)",
  request: {
    params: OrgParam,
    headers: z.object({ "idempotency-key": IdempotencyKeyHeader }),
    body: jsonBody(
      z
        .object({
          amount: UsdString.refine((n) => n !== 0n, "must not be zero").refine(
            (n) => (n < 0n ? -n : n) <= MAX_NANO_USD / 1000n,
            "is too large",
          ),
          description: z.string().trim().min(1).max(500),
          corrects_invoice_id: z.string().max(64).optional(),
        })
        .strict()
        .openapi("AdjustmentRequest"),
    ),
  },
  responses: {
    201: jsonResponse(z.object({ id: z.string(), replayed: z.boolean() }), "Queued"),
    200: jsonResponse(z.object({ id: z.string(), replayed: z.boolean() }), "A replay"),
    ...errorResponses(400, 401, 403, 404),
  },
});

export function registerBillingAdmin(app: OpenAPIHono<AppEnv>) {
  app.openapi(closeRoute, async (c) => {
    const { sql, metering, clock } = c.get("deps");
    const body = c.req.valid("json");
    const r = await closeDueCycles(sql, metering.catalog, clock(), {
      orgId: body.org_id,
      endCurrentNow: body.end_current_cycle_now,
    });
    return c.json({ invoices_created: r.created, already_closed: r.existing, organizations: r.orgs }, 200);
  });
  app.openapi(subscribeRoute, async (c) => {
    const { sql, metering, clock } = c.get("deps");
    return c.json(
      subscriptionJson(
        await subscribe(sql, metering.catalog, c.req.valid("param").id, c.req.valid("json").plan_id, clock()),
      ),
      200,
    );
  });
  app.openapi(cancelRoute, async (c) => {
    const { sql, clock } = c.get("deps");
    return c.json(subscriptionJson(await cancelSubscription(sql, c.req.valid("param").id, clock())), 200);
  });
  app.openapi(statusRoute, async (c) => {
    const { sql, clock } = c.get("deps");
    const { id, action } = c.req.valid("param");
    return c.json(invoiceJson(await setInvoiceStatus(sql, id, action === "pay" ? "paid" : "void", clock())), 200);
  });
  app.openapi(adjustmentRoute, async (c) => {
    const { sql, clock } = c.get("deps");
    const body = c.req.valid("json");
    const r = await createAdjustment(
      sql,
      {
        orgId: c.req.valid("param").id,
        amount: body.amount,
        description: body.description,
        correctsInvoiceId: body.corrects_invoice_id,
        idempotencyKey: c.req.valid("header")["idempotency-key"],
      },
      clock(),
    );
    return c.json({ id: r.id, replayed: !r.created }, r.created ? 201 : 200);
  });
}
