import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { createApiKey, KeyPermissions, KeyScopes } from "../../../billing/api-keys.js";
import { billingContext, type AppEnv } from "../../context.js";
import { requiresKey } from "../access.js";
import { errorResponses, jsonBody, jsonResponse } from "../../schemas.js";
import { CreatedApiKeyJson, createdApiKeyJson, KeyName } from "../billing/key-schemas.js";
import { OrgIdParam } from "./schemas.js";

export const CreateKeyRequest = z
  .object({
    scope: z.enum(KeyScopes).openapi({
      description:
        "org or admin. gateway is refused (400): gateway keys are platform credentials, made by POST /v1/admin/keys",
    }),
    name: KeyName.optional(),
    permissions: z.array(z.enum(KeyPermissions)).max(KeyPermissions.length).optional().openapi({
      description: 'An org key\'s permissions; default ["keys:write"]. [] makes it read-only for key management.',
    }),
  })
  .openapi("CreateKeyRequest", { example: { scope: "org", name: "Production" } });
export type CreateKeyRequest = z.input<typeof CreateKeyRequest>;

export const createKeyRoute = createRoute({
  operationId: "createKey",
  ...requiresKey({ scope: "admin", area: "admin" }),
  method: "post",
  path: "/v1/admin/orgs/{id}/keys",
  summary: "Create an API key for an organization",
  request: { params: OrgIdParam, body: jsonBody(CreateKeyRequest) },
  responses: {
    201: jsonResponse(CreatedApiKeyJson, "The key, in full, this once"),
    ...errorResponses(400, 401, 403, 404),
  },
});

export function registerCreateKey(app: OpenAPIHono<AppEnv>) {
  app.openapi(createKeyRoute, async (c) => {
    const body = c.req.valid("json");
    const key = await createApiKey(billingContext(c.get("deps")), {
      orgId: c.req.valid("param").id,
      scope: body.scope,
      name: body.name,
      permissions: body.permissions,
    });
    return c.json(createdApiKeyJson(key), 201);
  });
}
