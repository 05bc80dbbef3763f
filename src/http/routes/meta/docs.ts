import { readFile } from "node:fs/promises";
import { createRequire } from "node:module";
import { dirname, join } from "node:path";
import { promisify } from "node:util";
import { gzip } from "node:zlib";
import type { OpenAPIHono } from "@hono/zod-openapi";
import { BillingError } from "../../../errors.js";
import type { AppEnv } from "../../context.js";

export const DOCS_PATH = "/docs";
export const DOCS_ASSETS_PATH = "/docs/assets";
export const OPENAPI_PATH = "/v1/openapi.json";

type Asset = { name: string; body: Uint8Array<ArrayBuffer>; gzipped: Uint8Array<ArrayBuffer> };

/**
 * Scalar's API reference, the standalone browser bundle shipped in the npm package: the page
 * loads it from this API, never from a CDN, so the docs work offline and behind a firewall.
 * Read and compressed once, on the first request (Ponder executes this file: no work at import).
 */
let scalarBundle: Promise<Asset> | undefined;
function loadScalarBundle(): Promise<Asset> {
  scalarBundle ??= (async () => {
    // The package exports no path to its browser bundle: find it beside its main module.
    const dist = dirname(createRequire(import.meta.url).resolve("@scalar/api-reference"));
    const { version } = JSON.parse(await readFile(join(dist, "../package.json"), "utf8")) as { version: string };
    const body = new Uint8Array(await readFile(join(dist, "browser/standalone.js")));
    const gzipped = new Uint8Array(await promisify(gzip)(body));
    // The version is in the name, so a browser may keep the file for good (see cache-control).
    return { name: `scalar-api-reference-${version}.js`, body, gzipped };
  })();
  scalarBundle.catch(() => {
    scalarBundle = undefined;
  });
  return scalarBundle;
}

/**
 * Scalar's settings: nothing is fetched from another host (its default Inter font comes from
 * fonts.scalar.com; the AI agent and the developer toolbar talk to scalar.com).
 */
const SCALAR_CONFIGURATION = {
  withDefaultFonts: false,
  showDeveloperTools: "never",
  telemetry: false,
  agent: { disabled: true },
  defaultOpenAllTags: true,
};

/** The page may load only what this API serves: scripts, the document, and Scalar's own inline styles. */
export const DOCS_CONTENT_SECURITY_POLICY = [
  "default-src 'self'",
  "script-src 'self'",
  "style-src 'self' 'unsafe-inline'",
  "img-src 'self' data:",
  "font-src 'self' data:",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

const attribute = (s: string) => s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);

export function renderDocs(title: string, scriptUrl: string): string {
  return `<!doctype html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
<title>${attribute(title)} API</title>
</head>
<body>
<noscript>This page needs JavaScript. The same reference, machine-readable: <a href="${OPENAPI_PATH}">${OPENAPI_PATH}</a>.</noscript>
<script id="api-reference" data-url="${OPENAPI_PATH}" data-configuration="${attribute(JSON.stringify(SCALAR_CONFIGURATION))}"></script>
<script src="${attribute(scriptUrl)}"></script>
</body>
</html>
`;
}

/** GET /docs: the OpenAPI document rendered by Scalar, per operation with its parameters, bodies and examples. */
export function registerDocs(
  app: OpenAPIHono<AppEnv>,
  documentConfig: Parameters<OpenAPIHono<AppEnv>["getOpenAPIDocument"]>[0],
) {
  app.get(DOCS_PATH, async (c) => {
    const bundle = await loadScalarBundle();
    c.header("content-security-policy", DOCS_CONTENT_SECURITY_POLICY);
    return c.html(renderDocs(documentConfig.info.title, `${DOCS_ASSETS_PATH}/${bundle.name}`));
  });
  app.get(`${DOCS_ASSETS_PATH}/:name`, async (c) => {
    const bundle = await loadScalarBundle();
    if (c.req.param("name") !== bundle.name) {
      throw new BillingError("not_found", `no route for ${c.req.method} ${c.req.path}`);
    }
    const headers: Record<string, string> = {
      "content-type": "text/javascript; charset=utf-8",
      "cache-control": "public, max-age=31536000, immutable",
      "x-content-type-options": "nosniff",
      vary: "accept-encoding",
    };
    if (/\bgzip\b/.test(c.req.header("accept-encoding") ?? "")) {
      return c.body(bundle.gzipped, 200, { ...headers, "content-encoding": "gzip" });
    }
    return c.body(bundle.body, 200, headers);
  });
}
