import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { depositAddressFor } from "../../../billing/deposits/addresses.js";
import { formatTokenAmount } from "../../../billing/deposits/amounts.js";
import { listDeposits, recordTopup, type DepositView } from "../../../billing/deposits/topup.js";
import { formatUsd, formatUsdNumber } from "../../../ledger/money.js";
import { enqueueDepositChecks } from "../../../workers/queues.js";
import type { AppEnv } from "../../context.js";
import { principalOrgId, requireScope } from "../../middleware/auth.js";
import { rateLimit } from "../../middleware/rate-limit.js";
import { errorResponses, jsonBody, jsonResponse, Limit } from "../../schemas.js";

const org = { security: [{ bearer: [] }], middleware: [requireScope("org")], tags: ["husd"] };

export const DepositJson = z
  .object({
    id: z.string(),
    state: z.enum(["seen", "confirming", "credited", "orphaned", "rejected", "reversed"]),
    reason: z.string().nullable().openapi({ description: "Why it was rejected, orphaned or reversed" }),
    chain_id: z.number(),
    tx_hash: z.string(),
    log_index: z.number(),
    block_number: z.string().nullable(),
    token_address: z.string(),
    from: z.string().nullable(),
    amount_base_units: z.string().openapi({ description: "Exact token amount, in base units" }),
    amount_husd: z.string().openapi({ description: "Exact token amount, as a decimal" }),
    amount_usd: z.number().nullable().openapi({ description: "USD credited (or to be credited), for display" }),
    amount_nano_usd: z.string().nullable(),
    confirmations: z.string(),
    seen_at: z.string(),
    credited_at: z.string().nullable(),
  })
  .openapi("HusdDeposit");

function depositJson(d: DepositView, decimals: number) {
  return {
    id: d.id,
    state: d.state,
    reason: d.reason,
    chain_id: d.chainId,
    tx_hash: d.txHash,
    log_index: d.logIndex,
    block_number: d.blockNumber?.toString() ?? null,
    token_address: d.tokenAddress,
    from: d.from,
    amount_base_units: d.amount.toString(),
    amount_husd: formatTokenAmount(d.amount, decimals),
    amount_usd: d.amountNanoUsd === null ? null : formatUsdNumber(d.amountNanoUsd),
    amount_nano_usd: d.amountNanoUsd?.toString() ?? null,
    confirmations: d.confirmations.toString(),
    seen_at: d.seenAt.toISOString(),
    credited_at: d.creditedAt?.toISOString() ?? null,
  };
}

const addressRoute = createRoute({
  ...org,
  method: "get",
  path: "/v1/billing/husd/deposit-address",
  summary: "The organization's HUSD deposit address",
  responses: {
    200: jsonResponse(
      z
        .object({
          address: z.string(),
          chain_id: z.number(),
          token_address: z.string(),
          token_symbol: z.literal("HUSD"),
          token_decimals: z.number(),
          minimum_base_units: z.string(),
          finality: z.string(),
        })
        .openapi("HusdDepositAddress"),
      "Where to send HUSD",
    ),
    ...errorResponses(401, 403, 503),
  },
});

// Each call costs an RPC round trip with a receipt of any size, so it is limited per org across
// every replica (HUSD_TOPUP_RATE_LIMIT per HUSD_TOPUP_RATE_PERIOD_SECONDS), after authentication.
const topupRateLimit = rateLimit(
  "husd-topups",
  (config) => ({ limit: config.HUSD_TOPUP_RATE_LIMIT, periodMs: config.HUSD_TOPUP_RATE_PERIOD_SECONDS * 1000 }),
  (c) => principalOrgId(c),
);

const topupRoute = createRoute({
  ...org,
  middleware: [requireScope("org"), topupRateLimit],
  method: "post",
  path: "/v1/billing/husd/topups",
  summary: "Verify and record a HUSD transfer by its transaction hash",
  description:
    "Looks the transaction up on the chain now and records its transfers to this organization's deposit address; they are credited once final. Idempotent. " +
    "Limited per organization (429 `rate_limited` with `Retry-After`; 30 a minute by default); a transaction with more than 1,000 logs (by default) is refused " +
    "with 422 `too_many_logs` (its transfers are still found and credited by the indexer).",
  request: {
    body: jsonBody(
      z
        .object({ tx_hash: z.string().regex(/^0x[0-9a-fA-F]{64}$/, "must be a 0x-prefixed 32-byte transaction hash") })
        .strict()
        .openapi("HusdTopupRequest"),
    ),
  },
  responses: {
    201: jsonResponse(z.object({ deposits: z.array(DepositJson) }), "Recorded"),
    200: jsonResponse(z.object({ deposits: z.array(DepositJson) }), "Already recorded"),
    ...errorResponses(400, 401, 403, 422, 429, 503),
  },
});

const listRoute = createRoute({
  ...org,
  method: "get",
  path: "/v1/billing/husd/deposits",
  summary: "The organization's HUSD deposits, newest first, with their state",
  request: { query: z.object({ limit: Limit }) },
  responses: {
    200: jsonResponse(z.object({ data: z.array(DepositJson) }), "Deposits"),
    ...errorResponses(400, 401, 403),
  },
});

export function registerHusd(app: OpenAPIHono<AppEnv>) {
  app.openapi(addressRoute, async (c) => {
    const { sql, chain, config } = c.get("deps");
    const a = await depositAddressFor(sql, chain, config, principalOrgId(c));
    const finality = config.FINALITY_REQUIRE_FINALIZED_TAG
      ? `credited once the transfer's block is at or below the chain's finalized block and at least ${config.FINALITY_CONFIRMATIONS} blocks deep`
      : `credited once the transfer's block is at least ${config.FINALITY_CONFIRMATIONS} blocks deep`;
    return c.json(
      {
        address: a.address,
        chain_id: a.chainId,
        token_address: config.HUSD_ADDRESS,
        token_symbol: "HUSD" as const,
        token_decimals: config.HUSD_DECIMALS,
        minimum_base_units: config.HUSD_DUST_MINIMUM,
        finality,
      },
      200,
    );
  });
  app.openapi(topupRoute, async (c) => {
    const { sql, chain, config, clock, queues } = c.get("deps");
    const orgId = principalOrgId(c);
    const recorded = await recordTopup(
      { sql, chain, config },
      orgId,
      c.req.valid("json").tx_hash as `0x${string}`,
      clock(),
    );
    const pending = recorded.filter((r) => r.state === "seen" || r.state === "confirming").map((r) => r.id);
    if (queues) await enqueueDepositChecks(queues, pending).catch(() => undefined); // the scan re-finds them anyway
    const rows = await listDeposits(sql, orgId, { limit: 100, ids: recorded.map((r) => r.id) });
    return c.json(
      { deposits: rows.map((d) => depositJson(d, config.HUSD_DECIMALS)) },
      recorded.some((r) => r.created) ? 201 : 200,
    );
  });
  app.openapi(listRoute, async (c) => {
    const { sql, config } = c.get("deps");
    const rows = await listDeposits(sql, principalOrgId(c), { limit: c.req.valid("query").limit });
    return c.json({ data: rows.map((d) => depositJson(d, config.HUSD_DECIMALS)) }, 200);
  });
}
