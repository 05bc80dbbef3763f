import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { getAutoTopup } from "../../../billing/auto-topup/settings.js";
import { billingContext, type AppEnv } from "../../context.js";
import { principalOrgId } from "../../middleware/auth.js";
import { errorResponses, jsonResponse } from "../../schemas.js";
import { requiresKey } from "../access.js";
import { AutoTopupResponse, autoTopupJson } from "./schemas.js";

export const getAutoTopupRoute = createRoute({
  operationId: "getAutoTopup",
  ...requiresKey({
    scope: "org",
    area: "billing",
    description: "Never set: enabled false and every amount 0.",
  }),
  method: "get",
  path: "/v1/billing/auto-topup",
  summary: "The organization's auto top-up",
  responses: { 200: jsonResponse(AutoTopupResponse, "Auto top-up"), ...errorResponses(401, 403) },
});

export function registerGetAutoTopup(app: OpenAPIHono<AppEnv>) {
  app.openapi(getAutoTopupRoute, async (c) => {
    const settings = await getAutoTopup(billingContext(c.get("deps")), { orgId: principalOrgId(c) });
    return c.json(autoTopupJson(settings), 200);
  });
}
