import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { at } from "../../../billing/context.js";
import { closeDueCycles } from "../../../billing/invoices/close-due-cycles.js";
import { earlyEndNotBefore } from "../../../billing/invoices/due-cycles.js";
import { billingContext, type AppEnv } from "../../context.js";
import { requiresKey } from "../access.js";
import { errorResponses, IdempotencyKeyHeader, jsonBody, jsonResponse } from "../../schemas.js";

export const CloseCyclesRequest = z
  .object({
    org_id: z.string().max(64).optional(),
    end_current_cycle_now: z.boolean().optional().openapi({
      description: "Also end the running cycle now (needs org_id): it is invoiced, prorated, and a new cycle starts",
    }),
  })
  .strict()
  .refine((b) => !b.end_current_cycle_now || b.org_id, {
    message: "end_current_cycle_now needs org_id",
    path: ["org_id"],
  })
  .openapi("CloseCyclesRequest");
export type CloseCyclesRequest = z.input<typeof CloseCyclesRequest>;

export const CloseCyclesResponse = z.object({
  invoices_created: z.number(),
  already_closed: z.number(),
  organizations: z.number(),
  reason: z.enum(["cycle_started_recently"]).optional().openapi({
    description:
      "Present when end_current_cycle_now ended nothing: the running cycle began less than 60 s ago (the previous one was just closed)",
  }),
  message: z.string().optional().openapi({ description: "Why nothing was ended, and from when it can be" }),
});
export type CloseCyclesResponse = z.infer<typeof CloseCyclesResponse>;

export const closeCyclesRoute = createRoute({
  operationId: "closeCycles",
  ...requiresKey({
    scope: "admin",
    area: "admin",
    description:
      "Closing ended cycles is idempotent by itself (one invoice per cycle). Ending the current cycle now is not: send an Idempotency-Key with it, and a retry of that request (however late) ends nothing more and answers with Idempotent-Replayed: true; without one, a repeat within 60 s ends nothing, and a later one ends the next cycle.",
  }),
  method: "post",
  path: "/v1/admin/cycles/close",
  summary: "Close every ended billing cycle now, for one organization or all",
  request: {
    headers: z.object({ "idempotency-key": IdempotencyKeyHeader.optional() }),
    body: jsonBody(CloseCyclesRequest),
  },
  responses: {
    200: jsonResponse(CloseCyclesResponse, "What was closed"),
    ...errorResponses(400, 401, 403, 404, 409),
  },
});

export function registerCloseCycles(app: OpenAPIHono<AppEnv>) {
  app.openapi(closeCyclesRoute, async (c) => {
    const body = c.req.valid("json");
    const requestKey = body.end_current_cycle_now ? c.req.valid("header")["idempotency-key"] : undefined;
    const ctx = at(billingContext(c.get("deps")), c.get("deps").clock());
    const r = await closeDueCycles(ctx, {
      orgId: body.org_id,
      endCurrentNow: body.end_current_cycle_now,
      requestKey,
    });
    const counts = { invoices_created: r.created, already_closed: r.existing, organizations: r.orgs };
    if (r.endedByKey && r.created === 0) {
      c.header("Idempotent-Replayed", "true");
      return c.json(counts, 200);
    }
    // Ending a cycle that began under a minute ago does nothing: say so rather than answer zeros alone.
    const notBefore =
      body.end_current_cycle_now && body.org_id && r.created === 0
        ? await earlyEndNotBefore(ctx, { orgId: body.org_id })
        : undefined;
    if (!notBefore) return c.json(counts, 200);
    return c.json(
      {
        ...counts,
        reason: "cycle_started_recently" as const,
        message: `the running cycle began less than 60 s ago, when the previous one was closed; it can be ended from ${notBefore.toISOString()}`,
      },
      200,
    );
  });
}
