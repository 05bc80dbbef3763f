import { readFile } from "node:fs/promises";
import { join } from "node:path";
import { createConfig, lintFromString, type NormalizedProblem } from "@redocly/openapi-core";
import type { OpenAPI3 } from "openapi-typescript";
import ts from "typescript";
import { describe, expect } from "vitest";
import { CLIENT_TYPES_FILE, ROOT, renderClientTypes } from "../../scripts/openapi-client.js";
import type { TestApp } from "../support/app.js";
import { appTest as it } from "../support/fixtures.js";

// The served OpenAPI document, read by the tools an integrator would use: Redocly's linter with
// its recommended rules, and openapi-typescript + openapi-fetch for a typed client.

const METHODS = ["get", "put", "post", "delete", "patch", "options", "head", "trace"] as const;

const describeProblem = (p: NormalizedProblem) =>
  `${p.severity} ${p.ruleId}: ${p.message} at ${p.location.map((l) => l.pointer).join(", ")}`;

/**
 * Type-checks in-memory TypeScript files placed in the repository root (so `openapi-fetch`
 * resolves from node_modules) with the project's compiler options; diagnostics per file name.
 */
function typeCheck(files: Record<string, string>): Record<string, string[]> {
  const parsed = ts.getParsedCommandLineOfConfigFile(
    join(ROOT, "tsconfig.json"),
    {},
    {
      ...ts.sys,
      onUnRecoverableConfigFileDiagnostic: (d) => {
        throw new Error(ts.flattenDiagnosticMessageText(d.messageText, "\n"));
      },
    },
  );
  if (!parsed) throw new Error("tsconfig.json could not be read");
  const dir = join(ROOT, "__openapi_tools_check__");
  const virtual = new Map(Object.entries(files).map(([name, text]) => [join(dir, name), text]));
  const host = ts.createCompilerHost(parsed.options);
  const { fileExists, directoryExists, readFile: read, getSourceFile } = host;
  host.fileExists = (f) => virtual.has(f) || fileExists.call(host, f);
  host.directoryExists = (d) => d === dir || (directoryExists?.call(host, d) ?? true);
  host.readFile = (f) => virtual.get(f) ?? read.call(host, f);
  host.getSourceFile = (f, languageVersion, ...rest) => {
    const text = virtual.get(f);
    return text === undefined
      ? getSourceFile.call(host, f, languageVersion, ...rest)
      : ts.createSourceFile(f, text, languageVersion, true);
  };
  const roots = [...virtual.keys()].filter((f) => !f.endsWith(".d.ts"));
  const program = ts.createProgram(roots, { ...parsed.options, noEmit: true }, host);
  const byFile: Record<string, string[]> = {};
  for (const name of Object.keys(files)) byFile[name] = [];
  for (const d of ts.getPreEmitDiagnostics(program)) {
    const name = d.file ? d.file.fileName.slice(dir.length + 1) : "(global)";
    const line = d.file && d.start !== undefined ? d.file.getLineAndCharacterOfPosition(d.start).line + 1 : 0;
    byFile[name] = [
      ...(byFile[name] ?? []),
      `${name}:${line}: ${ts.flattenDiagnosticMessageText(d.messageText, "\n")}`,
    ];
  }
  return byFile;
}

/** GET /v1/openapi.json from the app, as text (for the linter) and parsed. */
async function served(app: TestApp): Promise<{ text: string; doc: OpenAPI3 }> {
  const res = await app.call("GET", "/v1/openapi.json");
  expect(res.status).toBe(200);
  return { text: res.text, doc: res.json };
}

describe("the served OpenAPI document, as client tools read it", () => {
  it("has no error under Redocly's recommended rules", async ({ app }) => {
    const { text } = await served(app);
    const config = await createConfig({ extends: ["recommended"] });
    const problems = await lintFromString({ source: text, absoluteRef: "/v1/openapi.json", config });
    const errors = problems.filter((p) => p.severity === "error").map(describeProblem);
    expect(errors, errors.join("\n")).toEqual([]);
  });

  it("generates a typed client that covers every operation", async ({ app }) => {
    const { doc } = await served(app);
    const types = await renderClientTypes(doc);
    const operations = Object.entries(doc.paths ?? {}).flatMap(([path, item]) =>
      METHODS.filter((m) => m in item).map((m) => ({
        path,
        op: (item as Record<string, { operationId?: string }>)[m],
      })),
    );
    expect(operations.length).toBeGreaterThan(20);
    for (const { path, op } of operations) {
      expect(types).toContain(`"${path}": {`);
      if (op?.operationId) expect(types).toContain(`${op.operationId}: {`);
    }
  });

  it("is what client/openapi.d.ts was generated from (npm run client:generate, then commit)", async ({ app }) => {
    const { doc } = await served(app);
    const committed = await readFile(join(ROOT, CLIENT_TYPES_FILE), "utf8").catch(() => null);
    expect(committed, `${CLIENT_TYPES_FILE} is missing: run npm run client:generate`).not.toBeNull();
    // A plain comparison: a diff of two 2,000-line files would bury the hint.
    const fresh = committed === (await renderClientTypes(doc));
    expect(fresh, `${CLIENT_TYPES_FILE} is stale: run npm run client:generate and commit the result`).toBe(true);
  });

  it("types the calls a client makes: right ones compile, wrong ones do not", async ({ app }) => {
    const { doc } = await served(app);
    const client = `import createClient from "openapi-fetch";
import type { paths } from "./openapi";
export const api = createClient<paths>({ baseUrl: "http://127.0.0.1:3000" });
`;
    const good = `import { api } from "./client";
export async function good() {
  const balance = await api.GET("/v1/billing/balance");
  const display: number | undefined = balance.data?.balance;
  const exact: string | undefined = balance.data?.balance_nano_usd;
  const hold = await api.POST("/v1/billing/authorize", {
    body: { org_id: "org_1", product: "llm", model: "zen-pro", estimate: { input_tokens: 10 } },
  });
  const holdId: string | undefined = hold.data?.hold_id;
  const code: string | undefined = hold.error?.error.code;
  const invoice = await api.GET("/v1/billing/invoices/{id}", { params: { path: { id: "inv_1" } } });
  const due: number | undefined = invoice.data?.amount_due;
  const page = await api.GET("/v1/billing/invoices", { params: { query: { limit: 5 } } });
  const cursor: string | null | undefined = page.data?.next_cursor;
  return { display, exact, holdId, code, due, cursor };
}
`;
    // One mistake per line; each line must be reported.
    const bad = [
      `import { api } from "./client";`,
      `export async function bad() {`,
      `  await api.GET("/v1/billing/no-such-path");`,
      `  await api.POST("/v1/billing/authorize", { body: { org_id: "org_1", product: "llm" } });`,
      `  await api.GET("/v1/billing/invoices/{id}", { params: { path: { id: 7 } } });`,
      `  const n: string | undefined = (await api.GET("/v1/billing/balance")).data?.balance;`,
      `  return n;`,
      `}`,
      ``,
    ].join("\n");
    const diagnostics = typeCheck({
      "openapi.d.ts": await renderClientTypes(doc),
      "client.ts": client,
      "good.ts": good,
      "bad.ts": bad,
    });
    expect(diagnostics["client.ts"]).toEqual([]);
    expect(diagnostics["good.ts"]).toEqual([]);
    const badLines = new Set((diagnostics["bad.ts"] ?? []).map((d) => Number(d.split(":")[1])));
    expect([...badLines].sort(), (diagnostics["bad.ts"] ?? []).join("\n")).toEqual([3, 4, 5, 6]);
    expect(Object.keys(diagnostics).sort()).toEqual(["bad.ts", "client.ts", "good.ts", "openapi.d.ts"]);
  }, 60_000);
});

describe("the docs page", () => {
  it("loads only what this API serves: every script and link resolves here, none on another host", async ({
    app: t,
  }) => {
    const page = await t.call("GET", "/docs");
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toContain("text/html");
    expect(page.headers.get("content-security-policy")).toContain("default-src 'self'");
    expect(page.text).toContain('data-url="/v1/openapi.json"');
    const urls = [...page.text.matchAll(/\b(?:src|href|data-url)="([^"]*)"/g)].map((m) => m[1] ?? "");
    expect(urls.length).toBeGreaterThanOrEqual(2);
    for (const url of urls) {
      expect(url, `${url} is not on this host`).toMatch(/^\/(?!\/)/);
      const res = await t.call("GET", url);
      expect(res.status, url).toBe(200);
    }
    const script = urls.find((u) => u.startsWith("/docs/assets/"));
    expect(script).toBeDefined();
  });

  it("serves Scalar's bundle from node_modules, cacheable for good and compressed on request", async ({ app: t }) => {
    const page = await t.call("GET", "/docs");
    const script = page.text.match(/<script src="([^"]+)"/)?.[1] ?? "";
    expect(script).toMatch(/^\/docs\/assets\/scalar-api-reference-\d+\.\d+\.\d+\.js$/);

    const plain = await t.app.request(script);
    expect(plain.status).toBe(200);
    expect(plain.headers.get("content-type")).toBe("text/javascript; charset=utf-8");
    expect(plain.headers.get("cache-control")).toBe("public, max-age=31536000, immutable");
    expect(plain.headers.get("content-encoding")).toBeNull();
    const body = await plain.text();
    expect(body.length).toBeGreaterThan(1_000_000);
    // The bundle itself mounts on the element the page declares.
    expect(body).toContain("api-reference");

    const gzipped = await t.app.request(script, { headers: { "accept-encoding": "gzip, br" } });
    expect(gzipped.headers.get("content-encoding")).toBe("gzip");
    const bytes = new Uint8Array(await gzipped.arrayBuffer());
    expect(bytes.length).toBeLessThan(body.length / 2);
    const { gunzipSync } = await import("node:zlib");
    expect(gunzipSync(bytes).toString("utf8")).toBe(body);

    const unknown = await t.call("GET", "/docs/assets/other.js");
    expect(unknown.status).toBe(404);
    expect(unknown.json.error.code).toBe("not_found");
  });
});
