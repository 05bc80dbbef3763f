import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { subscribe } from "../../../billing/subscriptions.js";
import { billingContext, type AppEnv } from "../../context.js";
import { requiresKey } from "../access.js";
import { errorResponses, jsonBody, jsonResponse } from "../../schemas.js";
import { OrgIdParam, SubscriptionResponse, subscriptionJson } from "./schemas.js";

export const SubscribeRequest = z
  .object({ plan_id: z.string().min(1).max(40) })
  .strict()
  .openapi("SubscribeRequest", { example: { plan_id: "pro" } });
export type SubscribeRequest = z.input<typeof SubscribeRequest>;

export const subscribeRoute = createRoute({
  operationId: "subscribe",
  ...requiresKey({ scope: "admin", area: "admin" }),
  method: "put",
  path: "/v1/admin/orgs/{id}/subscription",
  summary: "Subscribe an organization to a plan (a change of plan takes effect at the next cycle)",
  request: { params: OrgIdParam, body: jsonBody(SubscribeRequest) },
  responses: { 200: jsonResponse(SubscriptionResponse, "The subscription"), ...errorResponses(400, 401, 403, 404) },
});

export function registerSubscribe(app: OpenAPIHono<AppEnv>) {
  app.openapi(subscribeRoute, async (c) => {
    const orgId = c.req.valid("param").id;
    const planId = c.req.valid("json").plan_id;
    return c.json(subscriptionJson(await subscribe(billingContext(c.get("deps")), { orgId, planId })), 200);
  });
}
