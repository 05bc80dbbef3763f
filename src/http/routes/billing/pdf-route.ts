import { z, type OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import { BillingError } from "../../../errors.js";
import type { AppEnv } from "../../context.js";
import { errorResponses } from "../../schemas.js";
import { requiresKey } from "../access.js";

const DocumentId = z
  .string()
  .max(64)
  .regex(/^[A-Za-z0-9_]+$/, "must be a document id");

/**
 * A `GET <collection>/{id}.pdf` route (org key). The router has no `{id}.pdf` segment, so the
 * route matches the whole segment ending in `.pdf` (registered before the JSON route of the same
 * collection, which would take it as an id) and the document lists it under its public path.
 */
export function registerPdfRoute(
  app: OpenAPIHono<AppEnv>,
  o: {
    operationId: string;
    collection: string;
    summary: string;
    description: string;
    render: (c: Context<AppEnv>, id: string) => Promise<Buffer>;
  },
) {
  const access = requiresKey({ scope: "org", area: "billing", description: o.description });
  app.openAPIRegistry.registerPath({
    operationId: o.operationId,
    method: "get",
    path: `${o.collection}/{id}.pdf`,
    summary: o.summary,
    tags: access.tags,
    security: access.security,
    description: access.description,
    request: { params: z.object({ id: DocumentId }) },
    responses: {
      200: {
        description: "The document as a PDF",
        content: { "application/pdf": { schema: z.string().openapi({ format: "binary" }) } },
      },
      ...errorResponses(400, 401, 403, 404),
    },
  });
  app.on("GET", [`${o.collection}/:file{[^/]+\\.pdf}`], ...access.middleware, async (c: Context<AppEnv>) => {
    const parsed = DocumentId.safeParse((c.req.param("file") ?? "").slice(0, -".pdf".length));
    if (!parsed.success) throw new BillingError("invalid_request", "not a document id", { details: { param: "id" } });
    const bytes = await o.render(c, parsed.data);
    return c.body(new Uint8Array(bytes), 200, {
      "content-type": "application/pdf",
      "content-disposition": `inline; filename="${parsed.data}.pdf"`,
      "cache-control": "private, no-store",
    });
  });
}
