import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { setAutoTopup } from "../../../billing/auto-topup/settings.js";
import { billingContext, type AppEnv } from "../../context.js";
import { principalOrgId } from "../../middleware/auth.js";
import { errorResponses, jsonBody, jsonResponse, UsdString } from "../../schemas.js";
import { requiresKey } from "../access.js";
import { AutoTopupResponse, autoTopupJson } from "./schemas.js";

const USD = 1_000_000_000n;
/** A charge is a card top-up: the same bounds (5.00 to 10,000.00 USD, whole cents). */
export const AUTO_TOPUP_MIN_AMOUNT = 5n * USD;
export const AUTO_TOPUP_MAX_AMOUNT = 10_000n * USD;
export const AUTO_TOPUP_MAX_MONTHLY_LIMIT = 100_000n * USD;
export const AUTO_TOPUP_MAX_THRESHOLD = 1_000_000n * USD;

const wholeCents = (n: bigint) => n % 10_000_000n === 0n;

export const SetAutoTopupRequest = z
  .object({
    enabled: z.boolean(),
    threshold: UsdString.refine((n) => n >= 0n, "must not be negative")
      .refine((n) => n <= AUTO_TOPUP_MAX_THRESHOLD, "must be at most 1000000.00")
      .openapi({ type: "string", example: "10.00", description: "USD decimal string" }),
    amount: UsdString.refine((n) => n >= AUTO_TOPUP_MIN_AMOUNT, "must be at least 5.00")
      .refine((n) => n <= AUTO_TOPUP_MAX_AMOUNT, "must be at most 10000.00")
      .refine(wholeCents, "must be whole cents (at most 2 decimals that are not zero)")
      .openapi({ type: "string", example: "50.00", description: "USD decimal string, 5.00 to 10000.00, whole cents" }),
    monthly_limit: UsdString.refine((n) => n > 0n, "must be greater than zero")
      .refine((n) => n <= AUTO_TOPUP_MAX_MONTHLY_LIMIT, "must be at most 100000.00")
      .refine(wholeCents, "must be whole cents")
      .openapi({ type: "string", example: "200.00", description: "USD decimal string, at least amount" }),
  })
  .strict()
  .refine((b) => b.monthly_limit >= b.amount, { message: "must be at least amount", path: ["monthly_limit"] })
  .openapi("SetAutoTopupRequest", {
    example: { enabled: true, threshold: "10.00", amount: "50.00", monthly_limit: "200.00" },
  });
export type SetAutoTopupRequest = z.input<typeof SetAutoTopupRequest>;

export const setAutoTopupRoute = createRoute({
  operationId: "setAutoTopup",
  ...requiresKey({
    scope: "org",
    area: "billing",
    description: [
      "When a debit takes the balance from at or above `threshold` to below it, a worker charges `amount` to the default card off-session: once per crossing, never while a charge is in flight, and never beyond `monthly_limit` per calendar month (UTC).",
      "The credit arrives through the processor's signed webhook; open invoices are paid from it first.",
      "A card that needs the customer, or three declines in a row, turns auto top-up off (`disabled_reason`); PUT with `enabled: true` turns it on again.",
    ].join(" "),
  }),
  method: "put",
  path: "/v1/billing/auto-topup",
  summary: "Set the organization's auto top-up",
  request: { body: jsonBody(SetAutoTopupRequest) },
  responses: { 200: jsonResponse(AutoTopupResponse, "Auto top-up as set"), ...errorResponses(400, 401, 403) },
});

export function registerSetAutoTopup(app: OpenAPIHono<AppEnv>) {
  app.openapi(setAutoTopupRoute, async (c) => {
    const body = c.req.valid("json");
    const settings = await setAutoTopup(billingContext(c.get("deps")), {
      orgId: principalOrgId(c),
      enabled: body.enabled,
      threshold: body.threshold,
      amount: body.amount,
      monthlyLimit: body.monthly_limit,
    });
    return c.json(autoTopupJson(settings), 200);
  });
}
