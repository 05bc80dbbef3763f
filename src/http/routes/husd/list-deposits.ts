import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { listDeposits } from "../../../billing/deposits/topup.js";
import type { AppEnv } from "../../context.js";
import { readMostly } from "../../read-mostly.js";
import { requiresKey } from "../access.js";
import { principalOrgId } from "../../middleware/auth.js";
import { errorResponses, jsonResponse, Limit } from "../../schemas.js";
import { DepositJson, depositJson } from "./schemas.js";

export const DepositList = z.object({ data: z.array(DepositJson) });
export type DepositList = z.infer<typeof DepositList>;

export const listDepositsRoute = createRoute({
  operationId: "listDeposits",
  ...requiresKey({ scope: "org", area: "husd" }),
  method: "get",
  path: "/v1/billing/husd/deposits",
  summary: "The organization's HUSD deposits, newest first, with their state",
  request: { query: z.object({ limit: Limit }) },
  responses: {
    200: jsonResponse(DepositList, "Deposits"),
    ...errorResponses(400, 401, 403),
  },
});

export function registerListDeposits(app: OpenAPIHono<AppEnv>) {
  app.openapi(listDepositsRoute, async (c) => {
    const { config } = c.get("deps");
    const rows = await readMostly(c, principalOrgId(c), (ctx) =>
      listDeposits(ctx, {
        orgId: principalOrgId(c),
        limit: c.req.valid("query").limit,
      }),
    );
    return c.json({ data: rows.map((d) => depositJson(d, config.HUSD_DECIMALS)) }, 200);
  });
}
