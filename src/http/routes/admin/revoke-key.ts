import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { revokeApiKey } from "../../../billing/api-keys.js";
import { billingContext, type AppEnv } from "../../context.js";
import { requiresKey } from "../access.js";
import { errorResponses, jsonResponse } from "../../schemas.js";

export const RevokedKeyResponse = z
  .object({ id: z.string(), revoked: z.literal(true), revoked_at: z.string() })
  .openapi("RevokedApiKey");
export type RevokedKeyResponse = z.infer<typeof RevokedKeyResponse>;

export const revokeKeyRoute = createRoute({
  operationId: "revokeKey",
  ...requiresKey({ scope: "admin", area: "admin" }),
  method: "delete",
  path: "/v1/admin/keys/{id}",
  summary: "Revoke an API key (idempotent)",
  request: { params: z.object({ id: z.string().max(64) }) },
  responses: {
    200: jsonResponse(RevokedKeyResponse, "Revoked"),
    ...errorResponses(401, 403, 404),
  },
});

export function registerRevokeKey(app: OpenAPIHono<AppEnv>) {
  app.openapi(revokeKeyRoute, async (c) => {
    const deps = c.get("deps");
    const revoked = await revokeApiKey(billingContext(deps), { keyId: c.req.valid("param").id });
    const keyCache = deps.keyCache;
    keyCache?.revoked(revoked.id); // before answering: this replica refuses the key from the answer on
    return c.json({ id: revoked.id, revoked: true as const, revoked_at: revoked.revokedAt.toISOString() }, 200);
  });
}
