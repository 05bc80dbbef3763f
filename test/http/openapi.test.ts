import { existsSync } from "node:fs";
import { describe, expect } from "vitest";
import { appTest } from "../support/fixtures.js";

type Operation = {
  operationId?: string;
  summary?: string;
  description?: string;
  tags?: string[];
  security?: Record<string, string[]>[];
};
type Document = {
  openapi: string;
  servers?: { url: string }[];
  tags?: { name: string; description?: string }[];
  paths: Record<string, Record<string, Operation>>;
  components: { schemas: Record<string, { required?: string[]; properties?: object }>; securitySchemes: object };
};

/** Every `$ref` in `node`, with the JSON path it was found at. */
function refsIn(node: unknown, at = "#"): { at: string; ref: string }[] {
  if (Array.isArray(node)) return node.flatMap((v, i) => refsIn(v, `${at}/${i}`));
  if (!node || typeof node !== "object") return [];
  return Object.entries(node).flatMap(([k, v]) =>
    k === "$ref" && typeof v === "string" ? [{ at, ref: v }] : refsIn(v, `${at}/${k}`),
  );
}

/** Follows a local JSON pointer (`#/components/schemas/X`); undefined when it leads nowhere. */
function resolve(doc: unknown, ref: string): unknown {
  if (!ref.startsWith("#/")) return undefined;
  return ref
    .slice(2)
    .split("/")
    .map((part) => part.replace(/~1/g, "/").replace(/~0/g, "~"))
    .reduce<unknown>(
      (node, key) => (node && typeof node === "object" ? (node as Record<string, unknown>)[key] : undefined),
      doc,
    );
}

/** `doc`: the document the app serves; `operations`: each of its operations with a label. */
const it = appTest.extend<{ doc: Document; operations: { label: string; op: Operation }[] }>({
  doc: [
    async ({ app }, use) => {
      const res = await app.call("GET", "/v1/openapi.json");
      expect(res.status).toBe(200);
      await use(res.json);
    },
    { scope: "file" },
  ],
  operations: [
    async ({ doc }, use) =>
      use(
        Object.entries(doc.paths).flatMap(([path, methods]) =>
          Object.entries(methods).map(([method, op]) => ({ label: `${method.toUpperCase()} ${path}`, op })),
        ),
      ),
    { scope: "file" },
  ],
});

const kebab = (camel: string) => camel.replace(/[A-Z]/g, (ch) => `-${ch.toLowerCase()}`);

describe("OpenAPI document and docs page", () => {
  it("is generated from the same zod schemas that validate requests", ({ doc }) => {
    expect(doc.openapi).toBe("3.1.0");
    const grant = doc.paths["/v1/admin/orgs/{id}/credits"]!.post as unknown as {
      requestBody: { content: { "application/json": { schema: { $ref?: string } } } };
    };
    const schema = grant.requestBody.content["application/json"].schema;
    const resolved = (schema.$ref ? resolve(doc, schema.$ref) : schema) as { required: string[] };
    expect(resolved.required).toEqual(expect.arrayContaining(["amount", "reason"]));
    expect(doc.components.schemas.Balance?.properties).toHaveProperty("low_balance_threshold");
    expect(doc.components.securitySchemes).toMatchObject({ bearer: { type: "http", scheme: "bearer" } });
  });

  it("every $ref points at something in the document", ({ doc }) => {
    const refs = refsIn(doc);
    expect(refs.length).toBeGreaterThan(10);
    expect(refs.filter(({ ref }) => resolve(doc, ref) === undefined)).toEqual([]);
  });

  it("names a server, and declares with a description every tag an operation uses", ({ doc, operations }) => {
    expect(doc.servers?.length).toBeGreaterThan(0);
    const declared = new Map((doc.tags ?? []).map((tag) => [tag.name, tag.description]));
    const used = new Set(operations.flatMap(({ op }) => op.tags ?? []));
    expect([...used].filter((tag) => !declared.get(tag))).toEqual([]);
    expect(operations.filter(({ op }) => op.tags?.length !== 1).map(({ label }) => label)).toEqual([]);
  });

  it("every operation has a unique camelCase operationId and a one-line summary", ({ operations }) => {
    expect(operations.length).toBeGreaterThanOrEqual(26);
    expect(operations.filter(({ op }) => !/^[a-z][A-Za-z]+$/.test(op.operationId ?? "")).map((o) => o.label)).toEqual(
      [],
    );
    const ids = operations.map(({ op }) => op.operationId);
    expect(ids.filter((id, i) => ids.indexOf(id) !== i)).toEqual([]);
    expect(operations.filter(({ op }) => !op.summary || op.summary.includes("\n")).map((o) => o.label)).toEqual([]);
  });

  it("every operation states its security: [] without a key, bearer with the key scope named in its description", ({
    operations,
  }) => {
    expect(operations.filter(({ op }) => !Array.isArray(op.security)).map((o) => o.label)).toEqual([]);
    const secured = operations.filter(({ op }) => (op.security?.length ?? 0) > 0);
    expect(secured.length).toBeGreaterThan(20);
    expect(
      secured
        .filter(({ op }) => JSON.stringify(op.security) !== JSON.stringify([{ bearer: [] }]))
        .map(({ label }) => label),
    ).toEqual([]);
    expect(
      secured
        .filter(({ op }) => !/^Requires an? (org|gateway|admin) key\b/.test(op.description ?? ""))
        .map(({ label }) => label),
    ).toEqual([]);
  });

  it("every operation is the file src/http/routes/<tag>/<operationId in kebab-case>.ts", ({ operations }) => {
    const missing = operations
      .map(({ op }) => `src/http/routes/${op.tags?.[0]}/${kebab(op.operationId ?? "")}.ts`)
      .filter((file) => !existsSync(file));
    expect(missing).toEqual([]);
  });

  it("renders the docs page from the same document (Scalar, in the browser; see openapi-tools.test.ts)", async ({
    app,
  }) => {
    const page = await app.call("GET", "/docs");
    expect(page.status).toBe(200);
    expect(page.headers.get("content-type")).toContain("text/html");
    expect(page.text).toContain('<script id="api-reference" data-url="/v1/openapi.json"');
  });
});
