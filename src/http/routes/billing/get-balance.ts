import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { getBalance } from "../../../billing/balance.js";
import { billingContext, type AppEnv } from "../../context.js";
import { requiresKey } from "../access.js";
import { principalOrgId } from "../../middleware/auth.js";
import { errorResponses, jsonResponse } from "../../schemas.js";
import { BalanceResponse, balanceJson } from "./schemas.js";

export const getBalanceRoute = createRoute({
  operationId: "getBalance",
  ...requiresKey({ scope: "org", area: "billing" }),
  method: "get",
  path: "/v1/billing/balance",
  summary: "The organization's credit balance",
  responses: { 200: jsonResponse(BalanceResponse, "Balance"), ...errorResponses(401, 403) },
});

export function registerGetBalance(app: OpenAPIHono<AppEnv>) {
  app.openapi(getBalanceRoute, async (c) => {
    return c.json(balanceJson(await getBalance(billingContext(c.get("deps")), { orgId: principalOrgId(c) })), 200);
  });
}
