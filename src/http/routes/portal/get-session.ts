import type { OpenAPIHono } from "@hono/zod-openapi";
import { isPortalPrincipal } from "../../../billing/portal-sessions.js";
import { BillingError } from "../../../errors.js";
import type { AppEnv } from "../../context.js";
import { requireScope } from "../../middleware/auth.js";

/**
 * GET /portal/session: who the portal page is signed in as, and the CSRF token its writes send in
 * X-CSRF-Token. Only with a portal session cookie (an API key has no session); another site's page
 * cannot read the answer (no CORS), which is what makes the token a proof of the portal's page.
 * Not in the OpenAPI document (the portal's own).
 */
export function registerGetPortalSession(app: OpenAPIHono<AppEnv>) {
  app.get("/portal/session", requireScope("org"), (c) => {
    const principal = c.get("principal");
    if (!isPortalPrincipal(principal))
      throw new BillingError("insufficient_scope", "this is the billing portal's own endpoint: open a portal link");
    c.header("Cache-Control", "no-store");
    return c.json({
      id: principal.portalSession.id,
      org_id: principal.orgId,
      key_id: principal.keyId,
      permissions: principal.permissions,
      csrf_token: principal.portalSession.csrfToken,
    });
  });
}
