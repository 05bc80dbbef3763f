import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { revokePortalSession } from "../../../billing/portal-sessions.js";
import { billingContext, type AppEnv } from "../../context.js";
import { principalOrgId } from "../../middleware/auth.js";
import { requiresKey } from "../access.js";
import { errorResponses, jsonResponse } from "../../schemas.js";
import { PortalSessionIdParam, RevokedPortalSessionJson } from "./portal-session-schemas.js";

export const revokePortalSessionRoute = createRoute({
  operationId: "revokePortalSession",
  ...requiresKey({
    scope: "org",
    area: "billing",
    description:
      "Ends a portal session (or a link not yet opened): refused from the answer on. The portal's Sign out calls this for its own session. Another organization's session is 404; revoking again answers the first revocation.",
  }),
  method: "delete",
  path: "/v1/billing/portal-sessions/{id}",
  summary: "Revoke a billing portal session",
  request: { params: PortalSessionIdParam },
  responses: { 200: jsonResponse(RevokedPortalSessionJson, "Revoked"), ...errorResponses(400, 401, 403, 404) },
});

export function registerRevokePortalSession(app: OpenAPIHono<AppEnv>) {
  app.openapi(revokePortalSessionRoute, async (c) => {
    const revoked = await revokePortalSession(billingContext(c.get("deps")), {
      orgId: principalOrgId(c),
      id: c.req.valid("param").id,
    });
    return c.json({ id: revoked.id, revoked: true as const, revoked_at: revoked.revokedAt.toISOString() }, 200);
  });
}
