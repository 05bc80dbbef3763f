import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { getCreditNote } from "../../../billing/credit-notes/get-credit-note.js";
import { billingContext, type AppEnv } from "../../context.js";
import { principalOrgId } from "../../middleware/auth.js";
import { errorResponses, jsonResponse } from "../../schemas.js";
import { requiresKey } from "../access.js";
import { CreditNoteJson, creditNoteJson } from "./credit-note-schemas.js";

export const getCreditNoteRoute = createRoute({
  operationId: "getCreditNote",
  ...requiresKey({ scope: "org", area: "billing" }),
  method: "get",
  path: "/v1/billing/credit-notes/{id}",
  summary: "One credit note with its lines",
  request: { params: z.object({ id: z.string().max(64) }) },
  responses: { 200: jsonResponse(CreditNoteJson, "The credit note"), ...errorResponses(401, 403, 404) },
});

export function registerGetCreditNote(app: OpenAPIHono<AppEnv>) {
  app.openapi(getCreditNoteRoute, async (c) => {
    const note = await getCreditNote(billingContext(c.get("deps")), {
      orgId: principalOrgId(c),
      id: c.req.valid("param").id,
    });
    return c.json(creditNoteJson(note), 200);
  });
}
