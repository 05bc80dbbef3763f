import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { issueCreditNote } from "../../../billing/credit-notes/issue-credit-note.js";
import { processorClient } from "../../../billing/payments/processor-client.js";
import { billingContext, type AppEnv } from "../../context.js";
import {
  errorResponses,
  IdempotencyKeyHeader,
  jsonBody,
  jsonResponse,
  PositiveUsdString,
  safeText,
} from "../../schemas.js";
import { requiresKey } from "../access.js";
import { CreditNoteJson, creditNoteJson } from "../billing/credit-note-schemas.js";

export const CreateCreditNoteRequest = z
  .object({
    lines: z
      .array(
        z
          .object({
            description: safeText(1, 500).refine((s) => s.trim() !== "", "must not be blank"),
            amount: PositiveUsdString,
          })
          .strict(),
      )
      .min(1)
      .max(100),
    reason: safeText(1, 500).refine((s) => s.trim() !== "", "must not be blank"),
    refund: z.enum(["credits", "card"]).default("credits").openapi({
      description:
        "credits (default): granted back as credits. card: refunded to the card payment that paid the invoice (whole cents, at most its amount due)",
    }),
  })
  .strict()
  .openapi("CreateCreditNoteRequest", {
    example: {
      lines: [{ description: "Outage on 14 Nov: 4 hours of zen-pro", amount: "12.50" }],
      reason: "SLA credit",
    },
  });
export type CreateCreditNoteRequest = z.input<typeof CreateCreditNoteRequest>;

export const createCreditNoteRoute = createRoute({
  operationId: "createCreditNote",
  ...requiresKey({
    scope: "admin",
    area: "admin",
    description: [
      "Corrects an issued (open or paid) invoice without changing it: the note has its own gap-free number (CN-000001) and never takes the invoice's credit notes beyond its subtotal (409 `credit_exceeds_invoice`).",
      "Idempotent by the Idempotency-Key header (per organization): a retry returns the first note (200, Idempotent-Replayed: true) and moves no money again; a card refund the processor did not answer (503 `processor_unavailable`) is completed by that retry, never made twice.",
    ].join(" "),
  }),
  method: "post",
  path: "/v1/admin/invoices/{id}/credit-notes",
  summary: "Issue a credit note on an invoice",
  request: {
    params: z.object({ id: z.string().max(64) }),
    headers: z.object({ "idempotency-key": IdempotencyKeyHeader }),
    body: jsonBody(CreateCreditNoteRequest),
  },
  responses: {
    201: jsonResponse(CreditNoteJson, "Issued"),
    200: jsonResponse(CreditNoteJson, "A replay of an earlier note with the same key"),
    ...errorResponses(400, 401, 403, 404, 409, 503),
  },
});

export function registerCreateCreditNote(app: OpenAPIHono<AppEnv>) {
  app.openapi(createCreditNoteRoute, async (c) => {
    const deps = c.get("deps");
    const body = c.req.valid("json");
    const processor = deps.config.STRIPE_SECRET_KEY ? processorClient(deps.config) : null;
    const { creditNote, created } = await issueCreditNote(
      { ...billingContext(deps), processor },
      {
        invoiceId: c.req.valid("param").id,
        lines: body.lines.map((l) => ({ description: l.description.trim(), amount: l.amount })),
        reason: body.reason.trim(),
        refund: body.refund,
        idempotencyKey: c.req.valid("header")["idempotency-key"],
      },
    );
    if (!created) c.header("Idempotent-Replayed", "true");
    return c.json(creditNoteJson(creditNote), created ? 201 : 200);
  });
}
