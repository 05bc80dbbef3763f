import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { listGrants } from "../../../billing/list-grants.js";
import { billingContext, type AppEnv } from "../../context.js";
import { principalOrgId } from "../../middleware/auth.js";
import { Cursor, errorResponses, jsonResponse, Limit } from "../../schemas.js";
import { requiresKey } from "../access.js";
import { GrantJson, grantViewJson } from "./grant-schemas.js";

export const GrantPage = z
  .object({ data: z.array(GrantJson), has_more: z.boolean(), next_cursor: z.string().nullable() })
  .openapi("CreditGrantPage");

export const listGrantsRoute = createRoute({
  operationId: "listGrants",
  ...requiresKey({
    scope: "org",
    area: "billing",
    description:
      "Every credit grant of the organization (operator, plan, promo, referral, refund credit), newest first, with " +
      "what remains of each and the order in which spending draws on them: grants that expire first, soonest expiry " +
      "first, then the rest of the balance.",
  }),
  method: "get",
  path: "/v1/billing/grants",
  summary: "Credit grants, newest first",
  request: { query: z.object({ limit: Limit, cursor: Cursor }) },
  responses: { 200: jsonResponse(GrantPage, "A page of grants"), ...errorResponses(400, 401, 403) },
});

export function registerListGrants(app: OpenAPIHono<AppEnv>) {
  app.openapi(listGrantsRoute, async (c) => {
    const query = c.req.valid("query");
    const page = await listGrants(billingContext(c.get("deps")), {
      orgId: principalOrgId(c),
      limit: query.limit,
      cursor: query.cursor,
    });
    return c.json(
      { data: page.data.map(grantViewJson), has_more: page.nextCursor !== null, next_cursor: page.nextCursor },
      200,
    );
  });
}
