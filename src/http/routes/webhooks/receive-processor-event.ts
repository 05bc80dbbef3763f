import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { handleProcessorEvent } from "../../../billing/payments/events.js";
import { SIGNATURE_TOLERANCE_SECONDS, verifyProcessorEvent } from "../../../billing/payments/signature.js";
import { billingContext, type AppEnv } from "../../context.js";
import { processorDelivery } from "../../middleware/processor-delivery.js";
import { withoutKey } from "../access.js";
import { errorResponses, jsonResponse } from "../../schemas.js";

export const WebhookAck = z
  .object({
    received: z.literal(true),
    duplicate: z
      .boolean()
      .openapi({ description: "True when this event id was handled before: nothing was done again." }),
    outcome: z
      .string()
      .openapi({ example: "credited", description: "What handling the event did (the first time, for a duplicate)." }),
    note: z.string().optional(),
  })
  .openapi("WebhookAck");
export type WebhookAck = z.infer<typeof WebhookAck>;

export const PROCESSOR_WEBHOOK_PATH = "/v1/webhooks/processor";

export const receiveProcessorEventRoute = createRoute({
  method: "post",
  path: PROCESSOR_WEBHOOK_PATH,
  middleware: [processorDelivery] as const,
  operationId: "receiveProcessorEvent",
  summary: "Card processor events (Stripe-compatible webhook)",
  ...withoutKey({
    area: "webhooks",
    description:
      "No API key: each delivery is authenticated by its Stripe-Signature header (HMAC of the exact body with STRIPE_WEBHOOK_SECRET, " +
      `at most ${SIGNATURE_TOLERANCE_SECONDS} s old), verified with the processor's SDK before the body is parsed. Each event id is handled ` +
      "once; a redelivery answers 200 with duplicate=true. Handled: payment_intent.succeeded (credits usd top-ups once per payment), " +
      "charge.refunded and charge.dispute.created (reverse them, capped at what was credited; the balance may go negative), " +
      "charge.dispute.closed and charge.dispute.funds_reinstated (a won dispute gives back what it took, once), " +
      "payment_method.attached/.updated/.detached and customer.updated (saved cards and the default). Events reach an organization " +
      "only through the customer linked with PUT /v1/admin/orgs/{id}/processor-customer; others are recorded and acknowledged. " +
      "400 invalid_signature: missing, wrong or stale signature. 413 payload_too_large: a body over 256 KiB, refused unread. 503 not_configured: no webhook secret is set (the processor retries).",
  }),
  request: {
    // Documented, deliberately not validated here: the signature covers the exact bytes, so the
    // handler reads the raw body itself and parses it only after verifying it.
    body: {
      required: true,
      description: "The processor's event, exactly as it signed it",
      content: {
        "application/json": {
          schema: {
            type: "object",
            required: ["id", "type", "created", "livemode", "data"],
            properties: {
              id: { type: "string", example: "evt_1Q2w3E4r5T6y7U8i" },
              type: { type: "string", example: "payment_intent.succeeded" },
              created: { type: "integer" },
              livemode: { type: "boolean" },
              data: {
                type: "object",
                properties: { object: { type: "object" }, previous_attributes: { type: "object" } },
              },
            },
          },
        },
      },
    },
  },
  responses: {
    200: jsonResponse(WebhookAck, "Verified and handled (or already handled)"),
    ...errorResponses(400, 413, 503),
  },
});

export function registerReceiveProcessorEvent(app: OpenAPIHono<AppEnv>) {
  app.openapi(receiveProcessorEventRoute, async (c) => {
    const { config, clock } = c.get("deps");
    // The exact bytes first: nothing may parse (and so re-serialize) the body before the signature check.
    const rawBody = await c.req.text();
    const event = await verifyProcessorEvent(
      rawBody,
      c.req.header("stripe-signature"),
      config.STRIPE_WEBHOOK_SECRET,
      clock(),
    );
    const handled = await handleProcessorEvent(billingContext(c.get("deps")), {
      event,
      livemode: config.STRIPE_LIVEMODE,
    });
    return c.json(
      {
        received: true as const,
        duplicate: handled.duplicate,
        outcome: handled.outcome,
        ...(handled.duplicate ? { note: "this event was already handled; nothing was done again" } : {}),
      },
      200,
    );
  });
}
