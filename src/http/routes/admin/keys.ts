import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { createApiKey, KeyScopes, revokeApiKey } from "../../../billing/api-keys.js";
import type { AppEnv } from "../../context.js";
import { requireScope } from "../../middleware/auth.js";
import { errorResponses, jsonBody, jsonResponse } from "../../schemas.js";

export const CreateKeyRequest = z.object({ scope: z.enum(KeyScopes) }).openapi("CreateKeyRequest");
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

const createKeyRoute = createRoute({
  method: "post",
  path: "/v1/admin/orgs/{id}/keys",
  tags: ["admin"],
  summary: "Create an API key for an organization",
  security: [{ bearer: [] }],
  middleware: [requireScope("admin")] as const,
  request: { params: z.object({ id: z.string().max(64) }), body: jsonBody(CreateKeyRequest) },
  responses: {
    201: jsonResponse(CreatedKeyResponse, "The key, in full, this once"),
    ...errorResponses(400, 401, 403, 404),
  },
});

const revokeKeyRoute = createRoute({
  method: "delete",
  path: "/v1/admin/keys/{id}",
  tags: ["admin"],
  summary: "Revoke an API key (idempotent)",
  security: [{ bearer: [] }],
  middleware: [requireScope("admin")] as const,
  request: { params: z.object({ id: z.string().max(64) }) },
  responses: {
    200: jsonResponse(z.object({ id: z.string(), revoked: z.literal(true), revoked_at: z.string() }), "Revoked"),
    ...errorResponses(401, 403, 404),
  },
});

export function registerAdminKeys(app: OpenAPIHono<AppEnv>) {
  app.openapi(createKeyRoute, async (c) => {
    const key = await createApiKey(c.get("deps").sql, {
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
  app.openapi(revokeKeyRoute, async (c) => {
    const { sql, clock, keyCache } = c.get("deps");
    const revoked = await revokeApiKey(sql, c.req.valid("param").id, clock());
    keyCache?.revoked(revoked.id); // before answering: this replica refuses the key from the answer on
    return c.json({ id: revoked.id, revoked: true as const, revoked_at: revoked.revokedAt.toISOString() }, 200);
  });
}
