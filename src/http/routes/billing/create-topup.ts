import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { createCardTopup, type CardTopup } from "../../../billing/topups/create-card-topup.js";
import { BillingError } from "../../../errors.js";
import { NANO_PER_USD, parseUsd } from "../../../ledger/money.js";
import { cardContext, type AppEnv } from "../../context.js";
import { principalOrgId } from "../../middleware/auth.js";
import { usdFields } from "../../present.js";
import { errorResponses, IdempotencyKeyHeader, jsonBody, jsonResponse, UsdString } from "../../schemas.js";
import { requiresKey } from "../access.js";
import { checkRedirectUrl, RedirectUrl } from "./schemas.js";

const NANO_PER_CENT = NANO_PER_USD / 100n;

export const CreateTopupRequest = z
  .object({
    amount: UsdString.openapi({
      type: "string",
      example: "25.00",
      description: "USD as a decimal string, whole cents; between TOPUP_MIN_USD (5.00) and TOPUP_MAX_USD (10000.00)",
    }),
    currency: z.enum(["usd", "USD"]).optional().openapi({ description: "Only USD; the balance is USD" }),
    success_url: RedirectUrl,
    cancel_url: RedirectUrl,
  })
  .strict()
  .openapi("CreateTopupRequest", {
    example: {
      amount: "25.00",
      success_url: "https://console.hanzo.ai/billing?topup=done",
      cancel_url: "https://console.hanzo.ai/billing",
    },
  });
export type CreateTopupRequest = z.input<typeof CreateTopupRequest>;

export const TopupSession = z
  .object({
    id: z.string().openapi({ example: "top_4fJ2kQ9x0cT1mB7rW3yZ" }),
    url: z.string().openapi({ description: "The processor's payment page: send the customer there" }),
    status: z.enum(["pending", "succeeded", "failed", "refunded", "disputed"]),
    amount: z.number().openapi({ example: 25 }),
    amount_usd: z.string().openapi({ example: "25.00" }),
    amount_nano_usd: z.string(),
    created_at: z.string(),
  })
  .openapi("TopupSession");
export type TopupSession = z.infer<typeof TopupSession>;

function topupJson(t: CardTopup): TopupSession {
  return {
    id: t.id,
    url: t.url,
    status: t.status,
    ...usdFields("amount", t.amountNanoUsd),
    created_at: t.createdAt.toISOString(),
  };
}

export const createTopupRoute = createRoute({
  operationId: "createTopup",
  ...requiresKey({
    scope: "org",
    area: "billing",
    description:
      "Starts a card top-up: a Checkout Session at the card processor (its customer for this organization is created " +
      'on first use) → `{id, url, status: "pending", amount}`; send the customer to `url`. The credit arrives only when ' +
      "the processor's signed webhook says the payment succeeded, once. Idempotent by the Idempotency-Key header: a retry " +
      "returns the same session (200, Idempotent-Replayed: true). 503 processor_unavailable: the processor did not answer; " +
      "nothing was charged, retry with the same key.",
  }),
  method: "post",
  path: "/v1/billing/topups",
  summary: "Top up credits with a card",
  request: { headers: z.object({ "idempotency-key": IdempotencyKeyHeader }), body: jsonBody(CreateTopupRequest) },
  responses: {
    201: jsonResponse(TopupSession, "Session created"),
    200: jsonResponse(TopupSession, "A replay of an earlier top-up with the same key"),
    ...errorResponses(400, 401, 403, 409, 503),
  },
});

export function registerCreateTopup(app: OpenAPIHono<AppEnv>) {
  app.openapi(createTopupRoute, async (c) => {
    const deps = c.get("deps");
    const { config } = deps;
    const body = c.req.valid("json");
    const amount = body.amount;
    const min = parseUsd(config.TOPUP_MIN_USD);
    const max = parseUsd(config.TOPUP_MAX_USD);
    if (amount % NANO_PER_CENT !== 0n) {
      throw new BillingError("invalid_request", "amount must be in whole cents (at most 2 decimals)", {
        details: { param: "amount" },
      });
    }
    if (amount < min || amount > max) {
      throw new BillingError(
        "invalid_request",
        `amount must be between ${config.TOPUP_MIN_USD} and ${config.TOPUP_MAX_USD} USD`,
        { details: { param: "amount" } },
      );
    }
    const successUrl = checkRedirectUrl(body.success_url, "success_url", config.NODE_ENV);
    const cancelUrl = checkRedirectUrl(body.cancel_url, "cancel_url", config.NODE_ENV);
    const { topup, created } = await createCardTopup(cardContext(deps), {
      orgId: principalOrgId(c),
      idempotencyKey: c.req.valid("header")["idempotency-key"],
      amountCents: amount / NANO_PER_CENT,
      successUrl,
      cancelUrl,
    });
    if (!created) {
      c.header("Idempotent-Replayed", "true");
      return c.json(topupJson(topup), 200);
    }
    return c.json(topupJson(topup), 201);
  });
}
