import type { OpenAPIHono } from "@hono/zod-openapi";
import { getCreditNote } from "../../../billing/credit-notes/get-credit-note.js";
import { creditNotePdf } from "../../../billing/documents/credit-note-pdf.js";
import { billingContext, type AppEnv } from "../../context.js";
import { principalOrgId } from "../../middleware/auth.js";
import { registerPdfRoute } from "./pdf-route.js";

export function registerGetCreditNotePdf(app: OpenAPIHono<AppEnv>) {
  registerPdfRoute(app, {
    operationId: "getCreditNotePdf",
    collection: "/v1/billing/credit-notes",
    summary: "One credit note as a PDF",
    description:
      "The same numbers as GET /v1/billing/credit-notes/{id}: the invoice it corrects and its period, reason, billing details as issued, lines, total.",
    render: async (c, id) =>
      creditNotePdf(await getCreditNote(billingContext(c.get("deps")), { orgId: principalOrgId(c), id })),
  });
}
