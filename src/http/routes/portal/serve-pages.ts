import { readFile } from "node:fs/promises";
import { extname, resolve, sep } from "node:path";
import type { OpenAPIHono } from "@hono/zod-openapi";
import { BillingError } from "../../../errors.js";
import type { AppEnv } from "../../context.js";

const TYPES: Record<string, string> = {
  ".html": "text/html; charset=utf-8",
  ".js": "text/javascript; charset=utf-8",
  ".css": "text/css; charset=utf-8",
  ".svg": "image/svg+xml",
  ".png": "image/png",
  ".ico": "image/x-icon",
  ".json": "application/json",
};

/**
 * The page may load only its own files and call only this origin; no frame may hold it. Inline
 * styles are allowed for the chart library's (uPlot) element styles, never inline scripts.
 */
const CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "connect-src 'self'",
  "frame-ancestors 'none'",
  "base-uri 'none'",
  "form-action 'self'",
].join("; ");

/**
 * GET /portal/*: the billing portal's pages, built by Vite into PORTAL_DIR (`npm run build:portal`).
 * Files under assets/ have hashed names and are cached for a year; every other path is the app's
 * own route (/portal/costs, /portal/invoices/inv_…) and gets index.html. 503 not_configured when the
 * pages were not built. Not in the OpenAPI document (pages).
 */
export function registerServePortalPages(app: OpenAPIHono<AppEnv>) {
  // Before /portal/*, which matches /portal too: relative asset paths need the trailing slash.
  app.get("/portal", (c) => c.redirect("/portal/", 308));
  app.get("/portal/*", async (c) => {
    const root = resolve(c.get("deps").config.PORTAL_DIR);
    const wanted = decodedOrNull(c.req.path.slice("/portal/".length));
    // A path that is not valid percent-encoding names no page or file.
    if (wanted === null) throw new BillingError("not_found", "no such portal page");
    const isAsset = /^assets\/[A-Za-z0-9._-]+$/.test(wanted) || /^[A-Za-z0-9_-]+\.(svg|png|ico)$/.test(wanted);
    const file = resolve(root, isAsset ? wanted : "index.html");
    if (!file.startsWith(root + sep)) throw new BillingError("not_found", `no portal page ${c.req.path}`);
    let body: Buffer;
    try {
      body = await readFile(file);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== "ENOENT") throw err;
      if (isAsset) throw new BillingError("not_found", `no portal file ${c.req.path}`);
      throw new BillingError("not_configured", "the billing portal's pages are not built: run npm run build:portal");
    }
    const type = TYPES[extname(file)] ?? "application/octet-stream";
    c.header("Content-Type", type);
    c.header("X-Content-Type-Options", "nosniff");
    c.header("Referrer-Policy", "no-referrer");
    if (isAsset) c.header("Cache-Control", "public, max-age=31536000, immutable");
    else {
      c.header("Cache-Control", "no-store");
      c.header("Content-Security-Policy", CONTENT_SECURITY_POLICY);
      c.header("X-Frame-Options", "DENY");
    }
    return c.body(new Uint8Array(body), 200);
  });
}

function decodedOrNull(text: string): string | null {
  try {
    return decodeURIComponent(text);
  } catch {
    return null;
  }
}
