import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { listPlatformKeys } from "../../../billing/api-keys.js";
import { billingContext, type AppEnv } from "../../context.js";
import { requiresKey } from "../access.js";
import { errorResponses, jsonResponse } from "../../schemas.js";
import { ApiKeyList, apiKeyJson } from "../billing/key-schemas.js";

export const listPlatformKeysRoute = createRoute({
  operationId: "listPlatformKeys",
  ...requiresKey({ scope: "admin", area: "admin" }),
  method: "get",
  path: "/v1/admin/keys",
  summary: "List gateway and admin keys",
  responses: {
    200: jsonResponse(
      ApiKeyList,
      "The platform's gateway keys and every admin key, newest first, revoked ones with their revocation time",
    ),
    ...errorResponses(401, 403),
  },
});

export function registerListPlatformKeys(app: OpenAPIHono<AppEnv>) {
  app.openapi(listPlatformKeysRoute, async (c) => {
    const keys = await listPlatformKeys(billingContext(c.get("deps")));
    return c.json({ data: keys.map(apiKeyJson) }, 200);
  });
}
