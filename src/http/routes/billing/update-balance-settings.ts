import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { getBalance } from "../../../billing/balance.js";
import { setLowBalanceThreshold } from "../../../billing/organizations.js";
import { MoneyError, parseUsd } from "../../../ledger/money.js";
import { billingContext, type AppEnv } from "../../context.js";
import { requiresKey } from "../access.js";
import { principalOrgId } from "../../middleware/auth.js";
import { errorResponses, jsonBody, jsonResponse } from "../../schemas.js";
import { BalanceResponse, balanceJson } from "./schemas.js";

// A number (as in the seed's JSON) or a decimal string; numbers go through their shortest
// decimal form, so 10.1 means exactly 10.1 USD.
export const ThresholdInput = z
  .union([z.string().max(40), z.number().finite()])
  .transform((value, ctx) => {
    try {
      const nano = parseUsd(typeof value === "number" ? numberToDecimal(value) : value);
      if (nano < 0n) throw new MoneyError("must not be negative");
      if (nano > 1_000_000_000n * 1_000_000_000n) throw new MoneyError("must be at most 1000000000 USD");
      return nano;
    } catch (err) {
      ctx.addIssue({ code: "custom", message: err instanceof Error ? err.message : "invalid amount" });
      return z.NEVER;
    }
  })
  .openapi({ type: "string", example: "10.00" });

function numberToDecimal(n: number): string {
  const text = String(n);
  if (/e/i.test(text)) throw new MoneyError(`${text} is out of range or has too many decimals`);
  return text;
}

export const UpdateBalanceSettingsRequest = z
  .object({ low_balance_threshold: ThresholdInput })
  .strict()
  .openapi("UpdateBalanceSettings", { example: { low_balance_threshold: "10.00" } });
export type UpdateBalanceSettingsRequest = z.input<typeof UpdateBalanceSettingsRequest>;

export const updateBalanceSettingsRoute = createRoute({
  operationId: "updateBalanceSettings",
  ...requiresKey({ scope: "org", area: "billing" }),
  method: "patch",
  path: "/v1/billing/balance",
  summary: "Set the low-balance alert threshold",
  request: { body: jsonBody(UpdateBalanceSettingsRequest) },
  responses: { 200: jsonResponse(BalanceResponse, "Balance with the new threshold"), ...errorResponses(400, 401, 403) },
});

export function registerUpdateBalanceSettings(app: OpenAPIHono<AppEnv>) {
  app.openapi(updateBalanceSettingsRoute, async (c) => {
    const ctx = billingContext(c.get("deps"));
    const orgId = principalOrgId(c);
    // The threshold comes from the update's own `returning`: read again afterwards, it could be
    // a concurrent PATCH's value.
    const threshold = c.req.valid("json").low_balance_threshold;
    const org = await setLowBalanceThreshold(ctx, { orgId, threshold });
    const balance = await getBalance(ctx, { orgId });
    return c.json(balanceJson({ ...balance, lowBalanceThreshold: org.lowBalanceThreshold }), 200);
  });
}
