import { createApp } from "../../src/http/app.js";
import type { AppDeps } from "../../src/http/context.js";
import { OPENAPI_DOCUMENT } from "../../src/http/routes/meta/openapi.js";

export type DocumentedOperation = {
  method: string;
  path: string;
  /** False where the document says no key is needed (`security: []`). */
  secured: boolean;
  tags: string[];
  hasBody: boolean;
};

/** The OpenAPI document /v1/openapi.json serves, built without a database or a request. */
export function openApiDocument() {
  // Registering the routes reads none of the dependencies; only handling requests does.
  return createApp({} as AppDeps).getOpenAPI31Document(OPENAPI_DOCUMENT);
}

/**
 * The operations of the OpenAPI document that /v1/openapi.json serves, built without a database
 * or a request, so a test file can make one test per operation while vitest collects it.
 */
export function documentedOperations(): DocumentedOperation[] {
  const doc = openApiDocument();
  return Object.entries(doc.paths ?? {}).flatMap(([path, item]) =>
    (["get", "put", "post", "delete", "patch"] as const).flatMap((method) => {
      const op = item[method];
      if (!op) return [];
      return [
        {
          method: method.toUpperCase(),
          path,
          secured: (op.security?.length ?? 0) > 0,
          tags: op.tags ?? [],
          hasBody: op.requestBody !== undefined,
        },
      ];
    }),
  );
}
