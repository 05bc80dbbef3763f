import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { getBalance, type Balance } from "../../../billing/balance.js";
import { setLowBalanceThreshold } from "../../../billing/organizations.js";
import { formatUsdNumber, MoneyError, parseUsd } from "../../../ledger/money.js";
import type { AppEnv } from "../../context.js";
import { principalOrgId, requireScope } from "../../middleware/auth.js";
import { errorResponses, jsonBody, jsonResponse } from "../../schemas.js";

export const BalanceResponse = z
  .object({
    currency: z.literal("USD"),
    balance: z.number().openapi({ example: 142.87, description: "USD, for display. Exact value: balance_nano_usd." }),
    credits: z.number().openapi({ example: 142.87, description: "Spendable now: balance less live holds." }),
    low_balance_threshold: z.number().openapi({ example: 10 }),
    balance_nano_usd: z
      .string()
      .openapi({ example: "142870000000", description: "Exact, integer nano-USD (1e-9 USD)" }),
    credits_nano_usd: z.string(),
    held_nano_usd: z.string().openapi({ description: "Reserved by live authorizations" }),
    low_balance_threshold_nano_usd: z.string(),
  })
  .openapi("Balance");

export function balanceJson(b: Balance) {
  return {
    currency: "USD" as const,
    balance: formatUsdNumber(b.balance),
    credits: formatUsdNumber(b.credits),
    low_balance_threshold: formatUsdNumber(b.lowBalanceThreshold),
    balance_nano_usd: b.balance.toString(),
    credits_nano_usd: b.credits.toString(),
    held_nano_usd: b.held.toString(),
    low_balance_threshold_nano_usd: b.lowBalanceThreshold.toString(),
  };
}

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
  .openapi("UpdateBalanceSettings");

const getBalanceRoute = createRoute({
  method: "get",
  path: "/v1/billing/balance",
  tags: ["billing"],
  summary: "The organization's credit balance",
  security: [{ bearer: [] }],
  middleware: [requireScope("org")] as const,
  responses: { 200: jsonResponse(BalanceResponse, "Balance"), ...errorResponses(401, 403) },
});

const patchBalanceRoute = createRoute({
  method: "patch",
  path: "/v1/billing/balance",
  tags: ["billing"],
  summary: "Set the low-balance alert threshold",
  security: [{ bearer: [] }],
  middleware: [requireScope("org")] as const,
  request: { body: jsonBody(UpdateBalanceSettingsRequest) },
  responses: { 200: jsonResponse(BalanceResponse, "Balance with the new threshold"), ...errorResponses(400, 401, 403) },
});

export function registerBalance(app: OpenAPIHono<AppEnv>) {
  app.openapi(getBalanceRoute, async (c) => {
    const { sql, clock } = c.get("deps");
    return c.json(balanceJson(await getBalance(sql, principalOrgId(c), clock())), 200);
  });
  app.openapi(patchBalanceRoute, async (c) => {
    const { sql, clock } = c.get("deps");
    const orgId = principalOrgId(c);
    // The threshold comes from the update's own `returning`: read again afterwards, it could be
    // a concurrent PATCH's value.
    const org = await setLowBalanceThreshold(sql, orgId, c.req.valid("json").low_balance_threshold);
    const balance = await getBalance(sql, orgId, clock());
    return c.json(balanceJson({ ...balance, lowBalanceThreshold: org.lowBalanceThreshold }), 200);
  });
}
