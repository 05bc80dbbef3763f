import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { getOrganization } from "../../../billing/organizations.js";
import { billingContext, type AppEnv } from "../../context.js";
import { requiresKey } from "../access.js";
import { errorResponses, jsonResponse } from "../../schemas.js";
import { OrgIdParam, OrgResponse, orgJson } from "./schemas.js";

export const getOrgRoute = createRoute({
  operationId: "getOrg",
  ...requiresKey({ scope: "admin", area: "admin" }),
  method: "get",
  path: "/v1/admin/orgs/{id}",
  summary: "Get an organization",
  request: { params: OrgIdParam },
  responses: { 200: jsonResponse(OrgResponse, "The organization"), ...errorResponses(401, 403, 404) },
});

export function registerGetOrg(app: OpenAPIHono<AppEnv>) {
  app.openapi(getOrgRoute, async (c) => {
    const org = await getOrganization(billingContext(c.get("deps")), { id: c.req.valid("param").id });
    return c.json(orgJson(org), 200);
  });
}
