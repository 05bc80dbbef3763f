import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { listPromoCodes } from "../../../billing/promo-codes/list-promo-codes.js";
import { billingContext, type AppEnv } from "../../context.js";
import { Cursor, errorResponses, jsonResponse, Limit } from "../../schemas.js";
import { requiresKey } from "../access.js";
import { PromoCodeJson, promoCodeJson } from "./promo-code-schemas.js";

export const PromoCodePage = z
  .object({ data: z.array(PromoCodeJson), has_more: z.boolean(), next_cursor: z.string().nullable() })
  .openapi("PromoCodePage");

export const listPromoCodesRoute = createRoute({
  operationId: "listPromoCodes",
  ...requiresKey({ scope: "admin", area: "admin" }),
  method: "get",
  path: "/v1/admin/promo-codes",
  summary: "Promo codes with their redemption counts, newest first",
  request: { query: z.object({ limit: Limit, cursor: Cursor }) },
  responses: { 200: jsonResponse(PromoCodePage, "A page of promo codes"), ...errorResponses(400, 401, 403) },
});

export function registerListPromoCodes(app: OpenAPIHono<AppEnv>) {
  app.openapi(listPromoCodesRoute, async (c) => {
    const query = c.req.valid("query");
    const page = await listPromoCodes(billingContext(c.get("deps")), { limit: query.limit, cursor: query.cursor });
    return c.json(
      { data: page.data.map(promoCodeJson), has_more: page.nextCursor !== null, next_cursor: page.nextCursor },
      200,
    );
  });
}
