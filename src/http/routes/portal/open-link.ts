import type { OpenAPIHono } from "@hono/zod-openapi";
import { setCookie } from "hono/cookie";
import { openPortalLink, PORTAL_SESSION_TTL_MS } from "../../../billing/portal-sessions.js";
import { BillingError } from "../../../errors.js";
import { billingContext, type AppEnv } from "../../context.js";
import { PORTAL_COOKIE } from "../../middleware/auth.js";
import { portalMessagePage } from "./pages.js";

const LOOPBACK_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]"]);

/**
 * GET /portal/open?token=…: the link of POST /v1/billing/portal-sessions. Exchanges the token for
 * a session cookie (HttpOnly, SameSite=Strict, Secure except on this machine's plain http) and
 * redirects to /portal/, so the token leaves the address bar and the history. A used, expired or
 * unknown link gets a page saying so (410), never a session. Not in the OpenAPI document (a page).
 */
export function registerOpenPortalLink(app: OpenAPIHono<AppEnv>) {
  app.get("/portal/open", async (c) => {
    c.header("Cache-Control", "no-store");
    c.header("Referrer-Policy", "no-referrer");
    try {
      const session = await openPortalLink(billingContext(c.get("deps")), { token: c.req.query("token") ?? "" });
      const url = new URL(c.req.url);
      setCookie(c, PORTAL_COOKIE, session.sessionToken, {
        path: "/",
        httpOnly: true,
        sameSite: "Strict",
        secure: !(url.protocol === "http:" && LOOPBACK_HOSTS.has(url.hostname)),
        maxAge: Math.floor(PORTAL_SESSION_TTL_MS / 1000),
      });
      return c.redirect("/portal/", 303);
    } catch (err) {
      if (!(err instanceof BillingError) || err.code !== "invalid_api_key") throw err;
      return c.html(portalMessagePage("This link can't be opened", err.message), 410);
    }
  });
}
