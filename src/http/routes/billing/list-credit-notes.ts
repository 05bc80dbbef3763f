import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { listCreditNotes } from "../../../billing/credit-notes/list-credit-notes.js";
import { billingContext, type AppEnv } from "../../context.js";
import { principalOrgId } from "../../middleware/auth.js";
import { errorResponses, jsonResponse, Limit } from "../../schemas.js";
import { requiresKey } from "../access.js";
import { CreditNoteJson, creditNoteJson } from "./credit-note-schemas.js";

export const CreditNotePage = z.object({
  data: z.array(CreditNoteJson),
  has_more: z.boolean(),
  next_cursor: z.string().nullable(),
});

export const listCreditNotesRoute = createRoute({
  operationId: "listCreditNotes",
  ...requiresKey({ scope: "org", area: "billing" }),
  method: "get",
  path: "/v1/billing/credit-notes",
  summary: "The organization's credit notes, newest first",
  request: {
    query: z.object({
      limit: Limit,
      cursor: z.string().max(64).optional().openapi({ description: "`next_cursor` from the previous page" }),
    }),
  },
  responses: { 200: jsonResponse(CreditNotePage, "A page of credit notes"), ...errorResponses(400, 401, 403) },
});

export function registerListCreditNotes(app: OpenAPIHono<AppEnv>) {
  app.openapi(listCreditNotesRoute, async (c) => {
    const q = c.req.valid("query");
    const page = await listCreditNotes(billingContext(c.get("deps")), {
      orgId: principalOrgId(c),
      limit: q.limit,
      before: q.cursor,
    });
    return c.json(
      { data: page.data.map(creditNoteJson), has_more: page.nextCursor !== null, next_cursor: page.nextCursor },
      200,
    );
  });
}
