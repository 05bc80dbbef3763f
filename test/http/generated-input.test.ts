import fc from "fast-check";
import { describe, expect } from "vitest";
import { TEST_ADMIN_KEY, type TestApp } from "../support/app.js";
import { appTest } from "../support/fixtures.js";
import { openApiDocument } from "../support/openapi.js";

/**
 * Requests generated from the served OpenAPI document, for every operation: parameters and bodies
 * shaped by their schemas, mixed with hostile values (numbers past every range, years 0000, 9999
 * and 10000, lone surrogates, empty strings, deep nesting), sent with a key of the right scope.
 * No answer may be a 5xx (but 503 not_configured: this app has no chain), and every 4xx is in
 * the envelope. FC_SEED=<n> replays a run; a failure prints its seed and the request.
 */
const SEED = Number(process.env.FC_SEED ?? Date.now() % 2 ** 31);
const RUNS_PER_OPERATION = 12;

type Schema = {
  $ref?: string;
  type?: string | string[];
  properties?: Record<string, Schema>;
  required?: string[];
  items?: Schema;
  enum?: unknown[];
  example?: unknown;
  anyOf?: Schema[];
  oneOf?: Schema[];
  allOf?: Schema[];
  minimum?: number;
  maximum?: number;
  nullable?: boolean;
};
type Parameter = { name: string; in: "path" | "query" | "header"; required?: boolean; schema?: Schema };
type Operation = {
  tags?: string[];
  security?: unknown[];
  parameters?: Parameter[];
  requestBody?: { content?: Record<string, { schema?: Schema }> };
};

const deep = (n: number): unknown => (n === 0 ? 1 : { a: deep(n - 1) });
const hostileStrings = [
  "",
  " ",
  "\ud800",
  "a\udc00b",
  "\u0000",
  "0000-01",
  "0099-12",
  "9999-12",
  "10000-01",
  "0000-01-01T00:00:00Z",
  "0000-01-01T00:00:00+01:00",
  "9999-12-31T23:59:59-01:00",
  "10000-01-01T00:00:00Z",
  "99999999999999999999",
  "-99999999999999999999",
  "1e308",
  "NaN",
  "Infinity",
  "9".repeat(80),
  "x".repeat(5000),
  Buffer.from("s:99999999999999999999").toString("base64url"),
  Buffer.from("s:9223372036854775808").toString("base64url"),
  `org_${"9".repeat(40)}`,
  "'; drop table organizations; --",
  "../../etc/passwd",
  "%00",
  `hk-${"a".repeat(200)}`,
];
const hostileValues: unknown[] = [
  ...hostileStrings,
  null,
  true,
  -1,
  0,
  2 ** 53,
  -(2 ** 63),
  1e308,
  -1e308,
  0.1,
  [],
  {},
  deep(200),
  Array.from({ length: 50 }, () => ({})),
];
const hostile = fc.constantFrom(...hostileValues);

function resolve(doc: { components?: { schemas?: Record<string, Schema> } }, schema: Schema | undefined): Schema {
  let s = schema ?? {};
  for (let i = 0; s.$ref && i < 10; i++) s = doc.components?.schemas?.[s.$ref.split("/").pop() ?? ""] ?? {};
  return s;
}

/** Values shaped by a JSON schema (a few levels deep), hostile values mixed in at every level. */
function valueFor(doc: Parameters<typeof resolve>[0], raw: Schema | undefined, depth = 0): fc.Arbitrary<unknown> {
  const schema = resolve(doc, raw);
  const shaped = ((): fc.Arbitrary<unknown> => {
    const variants = schema.anyOf ?? schema.oneOf ?? schema.allOf;
    if (variants?.length) return fc.oneof(...variants.map((v) => valueFor(doc, v, depth + 1)));
    if (schema.enum?.length) return fc.constantFrom(...schema.enum);
    const type = Array.isArray(schema.type) ? schema.type[0] : schema.type;
    const example = schema.example === undefined ? [] : [fc.constant(schema.example)];
    switch (type) {
      case "string":
        return fc.oneof(...example, fc.string({ maxLength: 20 }), fc.constantFrom(...hostileStrings));
      case "integer":
        return fc.oneof(
          ...example,
          fc.integer({ min: schema.minimum ?? -1000, max: schema.maximum ?? 1000 }),
          fc.constantFrom(2 ** 31, 2 ** 53 + 1, -(2 ** 53), 1e21),
        );
      case "number":
        return fc.oneof(...example, fc.double({ noNaN: true }), fc.constantFrom(1e21, -1e21, 5e-324));
      case "boolean":
        return fc.boolean();
      case "array":
        return depth > 3 ? fc.constant([]) : fc.array(valueFor(doc, schema.items, depth + 1), { maxLength: 3 });
      case "object":
      case undefined: {
        if (depth > 3 || !schema.properties) return fc.dictionary(fc.string({ maxLength: 8 }), hostile, { maxKeys: 3 });
        const props = Object.fromEntries(
          Object.entries(schema.properties).map(([k, v]) => [k, valueFor(doc, v, depth + 1)]),
        );
        return fc.record(props, { requiredKeys: schema.required ?? [] });
      }
      default:
        return hostile;
    }
  })();
  return fc.oneof({ arbitrary: shaped, weight: 4 }, { arbitrary: hostile, weight: 1 });
}

/** A lone surrogate has no UTF-8 form (encodeURIComponent throws): sent as the bytes of one, invalid UTF-8. */
const pathSegment = (text: string) => {
  try {
    return encodeURIComponent(text || "x");
  } catch {
    return "%ED%A0%80";
  }
};

/** Header values must be byte strings: others are sent as their JSON text's printable ASCII. */
const asHeader = (v: unknown) =>
  String(typeof v === "string" ? v : JSON.stringify(v))
    .replace(/[^\x20-\x7e]/g, "?")
    .slice(0, 300);

type Document = Parameters<typeof resolve>[0] & { paths: Record<string, Record<string, Operation>> };

/** The document the app serves (built while vitest collects, to make one test per operation). */
const doc = openApiDocument() as unknown as Document;
const operations = Object.entries(doc.paths)
  .flatMap(([path, methods]) =>
    Object.entries(methods).map(([method, op]) => ({ path, method: method.toUpperCase(), op })),
  )
  .map((operation, index) => ({ ...operation, index }));

/** `org`: the organization whose keys and id the requests use, with credit to spend. */
const it = appTest.extend<{ org: Awaited<ReturnType<TestApp["createOrg"]>> }>({
  org: [
    async ({ app }, use) => {
      const org = await app.createOrg("Generated");
      await app.grant(org.id, "100.00");
      await use(org);
    },
    { scope: "file" },
  ],
});

describe(`generated input on every operation of the OpenAPI document (seed ${SEED}, ${RUNS_PER_OPERATION} requests per operation)`, () => {
  it("has operations to walk, and the app serves the document they come from", async ({ app }) => {
    expect(operations.length).toBeGreaterThanOrEqual(20);
    expect((await app.call("GET", "/v1/openapi.json")).json).toEqual(doc);
  });

  it.for(operations)(
    "$method $path: no 5xx, every 4xx in the envelope",
    async ({ path, method, op, index }, { app, org }) => {
      const tags = op.tags ?? [];
      const key = !op.security?.length
        ? undefined
        : tags.includes("admin")
          ? TEST_ADMIN_KEY
          : tags.includes("gateway")
            ? org.gatewayKey
            : org.orgKey;
      const params = op.parameters ?? [];
      const paramArbs = Object.fromEntries(
        params.map((p) => [
          `${p.in}:${p.name}`,
          p.in === "path" ? fc.oneof(fc.constant(org.id), valueFor(doc, p.schema)) : valueFor(doc, p.schema),
        ]),
      );
      const bodySchema = op.requestBody?.content?.["application/json"]?.schema;
      const request = fc.record({
        params: fc.record(paramArbs, {
          requiredKeys: params.filter((p) => p.required).map((p) => `${p.in}:${p.name}`),
        }),
        body: bodySchema ? valueFor(doc, bodySchema) : fc.constant(undefined),
      });
      await fc
        .assert(
          fc.asyncProperty(request, async ({ params: values, body }) => {
            let url = path;
            const query = new URLSearchParams();
            const headers: Record<string, string> = {};
            for (const [where, value] of Object.entries(values as Record<string, unknown>)) {
              const [kind, name] = where.split(":") as [string, string];
              const text = typeof value === "string" ? value : JSON.stringify(value);
              if (kind === "path") url = url.replace(`{${name}}`, pathSegment(text));
              else if (kind === "query") query.set(name, text);
              else headers[name] = asHeader(value);
            }
            url = url.replace(/\{[^}]+\}/g, org.id);
            if ([...query].length) url += `?${query}`;
            const res = await app.call(method, url, {
              key,
              headers,
              ...(bodySchema ? { rawBody: JSON.stringify(body) ?? "null" } : {}),
            });
            const label = `${method} ${url} ${bodySchema ? JSON.stringify(body)?.slice(0, 500) : ""} -> ${res.status} ${res.text.slice(0, 300)}`;
            if (res.status === 503) expect(res.json?.error?.code, label).toBe("not_configured");
            else expect(res.status, label).toBeLessThan(500);
            if (res.status >= 400) {
              expect(res.json?.error, label).toMatchObject({
                type: expect.any(String),
                code: expect.any(String),
                message: expect.any(String),
                request_id: expect.any(String),
              });
            }
          }),
          { seed: SEED + index, numRuns: RUNS_PER_OPERATION, endOnFailure: true, verbose: 1 },
        )
        .catch((err: Error) => {
          throw new Error(`${method} ${path}: FC_SEED=${SEED} reproduces this run\n${err.message}`);
        });
    },
  );
});
