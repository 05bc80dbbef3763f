import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { getBillingDetails } from "../../../billing/documents/billing-details.js";
import { BillingError } from "../../../errors.js";
import { billingContext, type AppEnv } from "../../context.js";
import { principalOrgId } from "../../middleware/auth.js";
import { errorResponses, jsonResponse } from "../../schemas.js";
import { requiresKey } from "../access.js";
import { BillingDetailsResponse, billingDetailsJson } from "./details-schemas.js";

export const getBillingDetailsRoute = createRoute({
  operationId: "getBillingDetails",
  ...requiresKey({ scope: "org", area: "billing", description: "404 `not_found` until the organization sets them." }),
  method: "get",
  path: "/v1/billing/details",
  summary: "The billing details printed on the organization's invoices and credit notes",
  responses: { 200: jsonResponse(BillingDetailsResponse, "The billing details"), ...errorResponses(401, 403, 404) },
});

export function registerGetBillingDetails(app: OpenAPIHono<AppEnv>) {
  app.openapi(getBillingDetailsRoute, async (c) => {
    const details = await getBillingDetails(billingContext(c.get("deps")), { orgId: principalOrgId(c) });
    if (!details) throw new BillingError("not_found", "no billing details set yet; PUT /v1/billing/details sets them");
    return c.json(billingDetailsJson(details), 200);
  });
}
