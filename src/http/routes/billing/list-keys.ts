import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { listOrgKeys } from "../../../billing/api-keys.js";
import { billingContext, type AppEnv } from "../../context.js";
import { principalOrgId } from "../../middleware/auth.js";
import { requiresKey } from "../access.js";
import { errorResponses, jsonResponse } from "../../schemas.js";
import { ApiKeyList, apiKeyJson } from "./key-schemas.js";

export const listKeysRoute = createRoute({
  operationId: "listKeys",
  ...requiresKey({
    scope: "org",
    area: "billing",
    description:
      "Any of the organization's keys may list them (read-only keys too): names, prefixes, permissions, created, last-used (to within a minute) and revoked times; never a secret.",
  }),
  method: "get",
  path: "/v1/billing/keys",
  summary: "List the organization's API keys",
  responses: {
    200: jsonResponse(ApiKeyList, "The organization's keys, newest first, revoked ones included"),
    ...errorResponses(401, 403),
  },
});

export function registerListKeys(app: OpenAPIHono<AppEnv>) {
  app.openapi(listKeysRoute, async (c) => {
    const keys = await listOrgKeys(billingContext(c.get("deps")), { orgId: principalOrgId(c) });
    return c.json({ data: keys.map(apiKeyJson) }, 200);
  });
}
