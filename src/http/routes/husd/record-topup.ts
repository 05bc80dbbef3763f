import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { listDeposits, recordTopup } from "../../../billing/deposits/topup.js";
import { enqueueDepositChecks } from "../../../jobs/enqueue.js";
import { billingContext, type AppEnv } from "../../context.js";
import { requiresKey } from "../access.js";
import { principalOrgId } from "../../middleware/auth.js";
import { rateLimit } from "../../middleware/rate-limit.js";
import { errorResponses, jsonBody, jsonResponse } from "../../schemas.js";
import { DepositJson, depositJson } from "./schemas.js";

export const TopupRequest = z
  .object({ tx_hash: z.string().regex(/^0x[0-9a-fA-F]{64}$/, "must be a 0x-prefixed 32-byte transaction hash") })
  .strict()
  .openapi("HusdTopupRequest", {
    example: { tx_hash: "0x5c504ed432cb51138bcf09aa5e8a410dd4a1e204ef84bfed1be16dfba1b22060" },
  });
export type TopupRequest = z.input<typeof TopupRequest>;

export const TopupResponse = z.object({ deposits: z.array(DepositJson) });
export type TopupResponse = z.infer<typeof TopupResponse>;

// Each call costs an RPC round trip with a receipt of any size, so it is limited per org across
// every replica (HUSD_TOPUP_RATE_LIMIT per HUSD_TOPUP_RATE_PERIOD_SECONDS), after authentication.
const topupRateLimit = rateLimit(
  "husd-topups",
  (config) => ({ limit: config.HUSD_TOPUP_RATE_LIMIT, periodMs: config.HUSD_TOPUP_RATE_PERIOD_SECONDS * 1000 }),
  (c) => principalOrgId(c),
);

export const recordTopupRoute = createRoute({
  operationId: "recordTopup",
  ...requiresKey({
    scope: "org",
    area: "husd",
    description:
      "Looks the transaction up on the chain now and records its transfers to this organization's deposit address; they are credited once final. Idempotent. " +
      "Limited per organization (429 `rate_limited` with `Retry-After`; 30 a minute by default); a transaction with more than 1,000 logs (by default) is refused " +
      "with 422 `too_many_logs` (its transfers are still found and credited by the indexer).",
    middleware: [topupRateLimit],
  }),
  method: "post",
  path: "/v1/billing/husd/topups",
  summary: "Verify and record a HUSD transfer by its transaction hash",
  request: { body: jsonBody(TopupRequest) },
  responses: {
    201: jsonResponse(TopupResponse, "Recorded"),
    200: jsonResponse(TopupResponse, "Already recorded"),
    ...errorResponses(400, 401, 403, 422, 429, 503),
  },
});

export function registerRecordTopup(app: OpenAPIHono<AppEnv>) {
  app.openapi(recordTopupRoute, async (c) => {
    const { config, queues } = c.get("deps");
    const ctx = billingContext(c.get("deps"));
    const orgId = principalOrgId(c);
    const recorded = await recordTopup(ctx, { orgId, txHash: c.req.valid("json").tx_hash as `0x${string}` });
    const pending = recorded.filter((r) => r.state === "seen" || r.state === "confirming").map((r) => r.id);
    if (queues) await enqueueDepositChecks(queues, pending).catch(() => undefined); // the scan re-finds them anyway
    const rows = await listDeposits(ctx, { orgId, limit: 100, ids: recorded.map((r) => r.id) });
    return c.json(
      { deposits: rows.map((d) => depositJson(d, config.HUSD_DECIMALS)) },
      recorded.some((r) => r.created) ? 201 : 200,
    );
  });
}
