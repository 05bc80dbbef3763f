import type { OpenAPIHono } from "@hono/zod-openapi";
import type { AppEnv } from "../../context.js";

type Operation = {
  summary?: string;
  description?: string;
  tags?: string[];
  security?: unknown[];
  responses?: Record<string, { description?: string }>;
};
type Document = {
  info: { title: string; version: string; description?: string };
  paths: Record<string, Record<string, Operation>>;
};

const escape = (s: string) => s.replace(/[&<>"']/g, (ch) => `&#${ch.charCodeAt(0)};`);

/**
 * A readable page rendered on the server from the same OpenAPI document: no script or CDN, so
 * it works offline and shows exactly what /v1/openapi.json says.
 */
export function renderDocs(doc: Document): string {
  const rows = Object.entries(doc.paths)
    .flatMap(([path, ops]) =>
      Object.entries(ops).map(([method, op]) => {
        const responses = Object.entries(op.responses ?? {})
          .map(([status, r]) => `<li><code>${escape(status)}</code> ${escape(r.description ?? "")}</li>`)
          .join("");
        return `<section><h3><span class="m ${escape(method)}">${escape(method.toUpperCase())}</span> <code>${escape(path)}</code></h3>
<p>${escape(op.summary ?? "")}${op.security?.length ? " <em>(API key)</em>" : ""}</p>${op.description ? `<p>${escape(op.description)}</p>` : ""}<ul>${responses}</ul></section>`;
      }),
    )
    .join("\n");
  return `<!doctype html><html><head><meta charset="utf-8"><title>${escape(doc.info.title)} API</title>
<style>body{font:15px/1.5 system-ui,sans-serif;max-width:900px;margin:2rem auto;padding:0 1rem;color:#111}
section{border-top:1px solid #ddd;padding:.5rem 0}.m{font-size:12px;padding:2px 6px;border-radius:4px;color:#fff;background:#555}
.get{background:#2563eb}.post{background:#059669}.patch,.put{background:#d97706}.delete{background:#dc2626}code{font-size:14px}</style></head>
<body><h1>${escape(doc.info.title)} <small>${escape(doc.info.version)}</small></h1><p>${escape(doc.info.description ?? "")}</p>
<p>Machine-readable: <a href="/v1/openapi.json">/v1/openapi.json</a>. Errors always use the envelope
<code>{"error":{"type","code","message","request_id"}}</code>.</p>${rows}</body></html>`;
}

export function registerDocs(
  app: OpenAPIHono<AppEnv>,
  documentConfig: Parameters<OpenAPIHono<AppEnv>["getOpenAPIDocument"]>[0],
) {
  app.get("/docs", (c) => c.html(renderDocs(app.getOpenAPIDocument(documentConfig) as unknown as Document)));
}
