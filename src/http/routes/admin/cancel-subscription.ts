import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { cancelSubscription } from "../../../billing/subscriptions.js";
import { billingContext, type AppEnv } from "../../context.js";
import { requiresKey } from "../access.js";
import { errorResponses, jsonResponse } from "../../schemas.js";
import { OrgIdParam, SubscriptionResponse, subscriptionJson } from "./schemas.js";

export const cancelSubscriptionRoute = createRoute({
  operationId: "cancelSubscription",
  ...requiresKey({ scope: "admin", area: "admin" }),
  method: "delete",
  path: "/v1/admin/orgs/{id}/subscription",
  summary: "Cancel a subscription (the current cycle is still charged)",
  request: { params: OrgIdParam },
  responses: {
    200: jsonResponse(SubscriptionResponse, "The canceled subscription"),
    ...errorResponses(401, 403, 404),
  },
});

export function registerCancelSubscription(app: OpenAPIHono<AppEnv>) {
  app.openapi(cancelSubscriptionRoute, async (c) => {
    const orgId = c.req.valid("param").id;
    return c.json(subscriptionJson(await cancelSubscription(billingContext(c.get("deps")), { orgId })), 200);
  });
}
