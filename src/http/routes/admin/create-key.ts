import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { createApiKey, KeyScopes } from "../../../billing/api-keys.js";
import { billingContext, type AppEnv } from "../../context.js";
import { requiresKey } from "../access.js";
import { errorResponses, jsonBody, jsonResponse } from "../../schemas.js";
import { OrgIdParam } from "./schemas.js";

export const CreateKeyRequest = z
  .object({ scope: z.enum(KeyScopes) })
  .openapi("CreateKeyRequest", { example: { scope: "org" } });
export type CreateKeyRequest = z.input<typeof CreateKeyRequest>;

export const CreatedKeyResponse = z
  .object({
    id: z.string(),
    org_id: z.string(),
    scope: z.enum(KeyScopes),
    key: z.string().openapi({ description: "The full key. Shown only in this response; store it now." }),
    prefix: z.string(),
    created_at: z.string(),
  })
  .openapi("CreatedApiKey");
export type CreatedKeyResponse = z.infer<typeof CreatedKeyResponse>;

export const createKeyRoute = createRoute({
  operationId: "createKey",
  ...requiresKey({ scope: "admin", area: "admin" }),
  method: "post",
  path: "/v1/admin/orgs/{id}/keys",
  summary: "Create an API key for an organization",
  request: { params: OrgIdParam, body: jsonBody(CreateKeyRequest) },
  responses: {
    201: jsonResponse(CreatedKeyResponse, "The key, in full, this once"),
    ...errorResponses(400, 401, 403, 404),
  },
});

export function registerCreateKey(app: OpenAPIHono<AppEnv>) {
  app.openapi(createKeyRoute, async (c) => {
    const key = await createApiKey(billingContext(c.get("deps")), {
      orgId: c.req.valid("param").id,
      scope: c.req.valid("json").scope,
    });
    return c.json(
      {
        id: key.id,
        org_id: key.orgId,
        scope: key.scope,
        key: key.key,
        prefix: key.prefix,
        created_at: key.createdAt.toISOString(),
      },
      201,
    );
  });
}
