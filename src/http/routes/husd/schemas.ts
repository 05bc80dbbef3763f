import { z } from "@hono/zod-openapi";
import { formatTokenAmount } from "../../../billing/deposits/amounts.js";
import type { DepositView } from "../../../billing/deposits/topup.js";
import { usd } from "../../present.js";

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
export type DepositJson = z.infer<typeof DepositJson>;

export function depositJson(d: DepositView, decimals: number): DepositJson {
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
    amount_usd: d.amountNanoUsd === null ? null : usd(d.amountNanoUsd).number,
    amount_nano_usd: d.amountNanoUsd?.toString() ?? null,
    confirmations: d.confirmations.toString(),
    seen_at: d.seenAt.toISOString(),
    credited_at: d.creditedAt?.toISOString() ?? null,
  };
}
