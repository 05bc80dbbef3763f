import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { createOrgKey, KeyPermissions, MAX_ACTIVE_ORG_KEYS } from "../../../billing/api-keys.js";
import { billingContext, type AppEnv } from "../../context.js";
import { requirePermission } from "../../middleware/auth.js";
import { requiresKey } from "../access.js";
import { errorResponses, jsonBody, jsonResponse } from "../../schemas.js";
import { CreatedApiKeyJson, createdApiKeyJson, KeyName } from "./key-schemas.js";

export const CreateOrgKeyRequest = z
  .strictObject({
    name: KeyName,
    permissions: z.array(z.enum(KeyPermissions)).max(KeyPermissions.length).optional().openapi({
      description:
        "Default: the requesting key's own. [] makes a read-only key (it lists keys but cannot create or revoke them). A key can grant only what it has.",
    }),
  })
  .openapi("CreateOrgKeyRequest", { example: { name: "CI", permissions: [] } });
export type CreateOrgKeyRequest = z.input<typeof CreateOrgKeyRequest>;

export const createOrgKeyRoute = createRoute({
  operationId: "createOrgKey",
  ...requiresKey({
    scope: "org",
    area: "billing",
    middleware: [requirePermission("keys:write")],
    description: `Needs the keys:write permission. Always an org key of the requesting key's organization (never a gateway or admin key). At most ${MAX_ACTIVE_ORG_KEYS} active keys per organization (409 conflict beyond).`,
  }),
  method: "post",
  path: "/v1/billing/keys",
  summary: "Create an API key for the organization",
  request: { body: jsonBody(CreateOrgKeyRequest) },
  responses: {
    201: jsonResponse(CreatedApiKeyJson, "The key, in full, this once; lists show only its prefix"),
    ...errorResponses(400, 401, 403, 409),
  },
});

export function registerCreateOrgKey(app: OpenAPIHono<AppEnv>) {
  app.openapi(createOrgKeyRoute, async (c) => {
    const body = c.req.valid("json");
    const key = await createOrgKey(billingContext(c.get("deps")), {
      principal: c.get("principal"),
      name: body.name,
      permissions: body.permissions,
    });
    return c.json(createdApiKeyJson(key), 201);
  });
}
