import { z } from "@hono/zod-openapi";

export const PortalLinkJson = z
  .object({
    id: z.string().openapi({ example: "psess_4kq0Vb3xYz8f2kq0Vb3x" }),
    url: z.string().openapi({
      example: "https://billing.hanzo.ai/portal/open?token=…",
      description:
        "Open once, within 15 minutes, in the user's browser: it starts a 12-hour portal session (an HttpOnly cookie) and drops the token from the address bar. A secret until opened: hand it only to the user it is for.",
    }),
    expires_at: z.string().openapi({ description: "When the link stops opening (15 minutes from now)" }),
  })
  .openapi("PortalLink");

export const PortalSessionIdParam = z.object({
  id: z.string().max(64).openapi({ example: "psess_4kq0Vb3xYz8f2kq0Vb3x" }),
});

export const RevokedPortalSessionJson = z
  .object({ id: z.string(), revoked: z.literal(true), revoked_at: z.string() })
  .openapi("RevokedPortalSession");
