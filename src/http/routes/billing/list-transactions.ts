import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { listTransactions } from "../../../billing/transactions.js";
import { usdFields } from "../../present.js";
import type { AppEnv } from "../../context.js";
import { readMostly } from "../../read-mostly.js";
import { requiresKey } from "../access.js";
import { principalOrgId } from "../../middleware/auth.js";
import { Cursor, errorResponses, jsonResponse, Limit } from "../../schemas.js";

export const LedgerTransaction = z
  .object({
    id: z.string(),
    kind: z.string().openapi({
      example: "grant",
      description:
        "What moved the money: grant (an operator's or a plan's credits), promo_credit (a promo code redeemed), " +
        "referral_credit, referral_clawback, credit_note (credits from a credit note), grant_expiry, card_topup, " +
        "husd_deposit, usage, invoice_settlement, reversal; hold, hold_expiry and hold_reservation only before holds became " +
        "reservations (migration 0037: a hold now moves no money). New kinds may appear: show unknown ones as they are.",
    }),
    amount: z.number().openapi({ description: "Net effect on the balance, USD (negative for spending)" }),
    amount_usd: z.string(),
    amount_nano_usd: z.string(),
    description: z.string().nullable(),
    metadata: z.record(z.string(), z.unknown()),
    created_at: z.string(),
  })
  .openapi("LedgerTransaction");
export type LedgerTransaction = z.infer<typeof LedgerTransaction>;

export const TransactionPage = z.object({
  data: z.array(LedgerTransaction),
  has_more: z.boolean(),
  next_cursor: z.string().nullable(),
});
export type TransactionPage = z.infer<typeof TransactionPage>;

export const listTransactionsRoute = createRoute({
  operationId: "listTransactions",
  ...requiresKey({ scope: "org", area: "billing" }),
  method: "get",
  path: "/v1/billing/transactions",
  summary: "Ledger history, newest first",
  request: { query: z.object({ limit: Limit, cursor: Cursor }) },
  responses: {
    200: jsonResponse(TransactionPage, "A page of transactions"),
    ...errorResponses(400, 401, 403),
  },
});

export function registerListTransactions(app: OpenAPIHono<AppEnv>) {
  app.openapi(listTransactionsRoute, async (c) => {
    const query = c.req.valid("query");
    const page = await readMostly(c, principalOrgId(c), (ctx) =>
      listTransactions(ctx, {
        orgId: principalOrgId(c),
        limit: query.limit,
        cursor: query.cursor,
      }),
    );
    return c.json(
      {
        data: page.data.map((t) => ({
          id: t.id,
          kind: t.kind,
          ...usdFields("amount", t.amount),
          description: t.description,
          metadata: t.metadata,
          created_at: t.createdAt.toISOString(),
        })),
        has_more: page.nextCursor !== null,
        next_cursor: page.nextCursor,
      },
      200,
    );
  });
}
