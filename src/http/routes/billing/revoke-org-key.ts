import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { revokeOrgKey } from "../../../billing/api-keys.js";
import { billingContext, type AppEnv } from "../../context.js";
import { requirePermission } from "../../middleware/auth.js";
import { requiresKey } from "../access.js";
import { errorResponses, jsonResponse } from "../../schemas.js";
import { KeyIdParam, RevokedKeyResponse } from "./key-schemas.js";

export const revokeOrgKeyRoute = createRoute({
  operationId: "revokeOrgKey",
  ...requiresKey({
    scope: "org",
    area: "billing",
    middleware: [requirePermission("keys:write")],
    description:
      "Needs the keys:write permission. The key is refused from the answer on, on every replica within a second. Revoking a revoked key answers its revocation again. The organization's last active keys:write key cannot be revoked here (409 conflict): create another keys:write key first, or ask an operator. Another organization's key is 404.",
  }),
  method: "delete",
  path: "/v1/billing/keys/{id}",
  summary: "Revoke one of the organization's API keys",
  request: { params: KeyIdParam },
  responses: {
    200: jsonResponse(RevokedKeyResponse, "Revoked"),
    ...errorResponses(400, 401, 403, 404, 409),
  },
});

export function registerRevokeOrgKey(app: OpenAPIHono<AppEnv>) {
  app.openapi(revokeOrgKeyRoute, async (c) => {
    const deps = c.get("deps");
    const revoked = await revokeOrgKey(billingContext(deps), {
      principal: c.get("principal"),
      keyId: c.req.valid("param").id,
    });
    deps.keyCache?.revoked(revoked.id); // before answering: this replica refuses the key from the answer on
    return c.json({ id: revoked.id, revoked: true as const, revoked_at: revoked.revokedAt.toISOString() }, 200);
  });
}
