import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { revokeApiKey } from "../../../billing/api-keys.js";
import { billingContext, type AppEnv } from "../../context.js";
import { requiresKey } from "../access.js";
import { errorResponses, jsonResponse } from "../../schemas.js";
import { KeyIdParam, RevokedKeyResponse } from "../billing/key-schemas.js";

export const revokeKeyRoute = createRoute({
  operationId: "revokeKey",
  ...requiresKey({ scope: "admin", area: "admin" }),
  method: "delete",
  path: "/v1/admin/keys/{id}",
  summary: "Revoke any API key: an organization's or a gateway key (idempotent)",
  request: { params: KeyIdParam },
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
