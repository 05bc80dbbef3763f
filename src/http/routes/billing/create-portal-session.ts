import { createRoute, type OpenAPIHono } from "@hono/zod-openapi";
import { createPortalLink } from "../../../billing/portal-sessions.js";
import { billingContext, type AppEnv } from "../../context.js";
import { requiresKey } from "../access.js";
import { errorResponses, jsonResponse } from "../../schemas.js";
import { PortalLinkJson } from "./portal-session-schemas.js";

export const createPortalSessionRoute = createRoute({
  operationId: "createPortalSession",
  ...requiresKey({
    scope: "org",
    area: "billing",
    description:
      "A single-use link to the billing portal, for a console or CLI to send its user to. The session it starts acts as this key (its organization and permissions: without keys:write the portal cannot create or revoke keys) and ends after 12 hours, when revoked (DELETE /v1/billing/portal-sessions/{id}), or when this key is revoked. A portal session cannot make links.",
  }),
  method: "post",
  path: "/v1/billing/portal-sessions",
  summary: "Create a billing portal link",
  responses: { 201: jsonResponse(PortalLinkJson, "The link"), ...errorResponses(401, 403) },
});

export function registerCreatePortalSession(app: OpenAPIHono<AppEnv>) {
  app.openapi(createPortalSessionRoute, async (c) => {
    const deps = c.get("deps");
    const link = await createPortalLink(billingContext(deps), { principal: c.get("principal") });
    const base = deps.config.PORTAL_URL ?? new URL(c.req.url).origin;
    const url = `${base.replace(/\/+$/, "")}/portal/open?token=${link.token}`;
    return c.json({ id: link.id, url, expires_at: link.expiresAt.toISOString() }, 201);
  });
}
