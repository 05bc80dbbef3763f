import type { OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import { setCookie } from "hono/cookie";
import { openPortalLink, PORTAL_SESSION_TTL_MS, peekPortalLink } from "../../../billing/portal-sessions.js";
import { BillingError } from "../../../errors.js";
import { billingContext, type AppEnv } from "../../context.js";
import { PORTAL_COOKIE } from "../../middleware/auth.js";
import { fromOwnPage } from "../../middleware/own-origin.js";
import { portalMessagePage, portalOpenPage } from "./pages.js";

const LOOPBACK_HOSTS = new Set(["localhost", "127.0.0.1", "[::1]"]);

/**
 * The link of POST /v1/billing/portal-sessions, in two steps, so that only the person it was
 * given to opens it:
 * - GET /portal/open?token=…: a page naming the organization, with a button; it uses nothing up,
 *   so a mail or chat scanner that fetches links first leaves the link working.
 * - POST /portal/open (the button, token in the form): exchanges the token for a session cookie
 *   (HttpOnly, SameSite=Strict, Secure except on this machine's plain http) and redirects to
 *   /portal/. Only from the page itself (fromOwnPage): a form on another site cannot sign the
 *   browser in to the sender's organization (login CSRF), where a card saved would be theirs.
 * A used, expired or unknown link gets a page saying so (410), never a session. Not in the
 * OpenAPI document (pages), never cached, never framed, never a Referer carrying the token.
 */
export function registerOpenPortalLink(app: OpenAPIHono<AppEnv>) {
  app.get("/portal/open", async (c) => {
    pageHeaders(c);
    const token = c.req.query("token") ?? "";
    try {
      const { orgName } = await peekPortalLink(billingContext(c.get("deps")), { token });
      return c.html(portalOpenPage(orgName, token), 200);
    } catch (err) {
      return refused(c, err);
    }
  });
  app.post("/portal/open", async (c) => {
    pageHeaders(c);
    if (!fromOwnPage(c.req.raw.headers))
      return c.html(
        portalMessagePage("This link can't be opened here", "Open the billing link itself, then press its button."),
        403,
      );
    const form = await c.req.parseBody().catch(() => ({}) as Record<string, unknown>);
    const token = typeof form.token === "string" ? form.token : "";
    try {
      const session = await openPortalLink(billingContext(c.get("deps")), { token });
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
      return refused(c, err);
    }
  });
}

function pageHeaders(c: Context<AppEnv>) {
  c.header("Cache-Control", "no-store");
  c.header("Referrer-Policy", "no-referrer");
  c.header("X-Frame-Options", "DENY");
  c.header(
    "Content-Security-Policy",
    "default-src 'none'; style-src 'unsafe-inline'; img-src data:; form-action 'self'; frame-ancestors 'none'",
  );
}

function refused(c: Context<AppEnv>, err: unknown) {
  if (!(err instanceof BillingError) || err.code !== "invalid_api_key") throw err;
  return c.html(portalMessagePage("This link can't be opened", err.message), 410);
}
