import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { listTopups, type TopupView } from "../../../billing/topups/list-topups.js";
import type { AppEnv } from "../../context.js";
import { principalOrgId } from "../../middleware/auth.js";
import { usd } from "../../present.js";
import { Cursor, errorResponses, jsonResponse, Limit } from "../../schemas.js";
import { readMostly } from "../../read-mostly.js";
import { requiresKey } from "../access.js";

export const Topup = z
  .object({
    id: z.string(),
    method: z.enum(["card", "husd"]),
    status: z
      .enum([
        "pending",
        "succeeded",
        "failed",
        "refunded",
        "disputed",
        "seen",
        "confirming",
        "credited",
        "orphaned",
        "rejected",
        "reversed",
      ])
      .openapi({
        description:
          "card: pending, succeeded, failed, refunded (in part or whole), disputed; husd: the deposit's state " +
          "(seen, confirming, credited, orphaned, rejected, reversed; see GET /v1/billing/husd/deposits)",
      }),
    amount: z.number().nullable().openapi({ description: "USD, for display; null for an HUSD deposit not valued" }),
    amount_usd: z.string().nullable(),
    amount_nano_usd: z.string().nullable(),
    created_at: z.string(),
  })
  .openapi("Topup");

export const TopupPage = z
  .object({ data: z.array(Topup), has_more: z.boolean(), next_cursor: z.string().nullable() })
  .openapi("TopupPage");
export type TopupPage = z.infer<typeof TopupPage>;

function topupJson(t: TopupView): z.infer<typeof Topup> {
  const amount = t.amountNanoUsd === null ? null : usd(t.amountNanoUsd);
  return {
    id: t.id,
    method: t.method,
    status: t.status,
    amount: amount?.number ?? null,
    amount_usd: amount?.exact ?? null,
    amount_nano_usd: amount?.nano ?? null,
    created_at: t.createdAt.toISOString(),
  };
}

export const listTopupsRoute = createRoute({
  operationId: "listTopups",
  ...requiresKey({
    scope: "org",
    area: "billing",
    description:
      "Every top-up, card and HUSD, newest first: card top-ups started with POST /v1/billing/topups (pending until " +
      "the processor's webhook), card payments credited otherwise, and HUSD deposits.",
  }),
  method: "get",
  path: "/v1/billing/topups",
  summary: "Top-ups, newest first",
  request: { query: z.object({ limit: Limit, cursor: Cursor }) },
  responses: { 200: jsonResponse(TopupPage, "A page of top-ups"), ...errorResponses(400, 401, 403) },
});

export function registerListTopups(app: OpenAPIHono<AppEnv>) {
  app.openapi(listTopupsRoute, async (c) => {
    const query = c.req.valid("query");
    const page = await readMostly(c, principalOrgId(c), (ctx) =>
      listTopups(ctx, {
        orgId: principalOrgId(c),
        limit: query.limit,
        cursor: query.cursor,
      }),
    );
    return c.json(
      { data: page.data.map(topupJson), has_more: page.nextCursor !== null, next_cursor: page.nextCursor },
      200,
    );
  });
}
