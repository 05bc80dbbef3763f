import type { Config } from "../../config.js";
import type { Sql } from "../../db/client.js";
import { newId } from "../../ids.js";
import { baseUnitsToNanoUsd } from "./amounts.js";

export type ObservedTransfer = {
  chainId: number;
  txHash: string;
  logIndex: number;
  blockNumber: bigint;
  blockHash: string;
  tokenAddress: string;
  from: string;
  to: string;
  amount: bigint;
};

export type DepositState = "seen" | "confirming" | "credited" | "orphaned" | "rejected" | "reversed";

/** Why a transfer will never be credited, decided once when it is first recorded. */
export function rejectionReason(t: ObservedTransfer, orgId: string | null, config: Config): string | null {
  if (t.tokenAddress.toLowerCase() !== config.HUSD_ADDRESS.toLowerCase()) return "wrong_token: not the configured HUSD contract";
  if (t.chainId !== config.CHAIN_ID) return "wrong_chain";
  if (!orgId) return "unknown_address: not an organization's deposit address";
  if (t.amount < BigInt(config.HUSD_DUST_MINIMUM)) return `below_dust_minimum: less than ${config.HUSD_DUST_MINIMUM} base units`;
  const nano = baseUnitsToNanoUsd(t.amount, config.HUSD_DECIMALS);
  if (nano === null) return "amount_exceeds_ledger_range: too large to credit; an operator must look";
  if (nano === 0n) return "below_one_nano_usd: smaller than the ledger's unit";
  return null;
}

/**
 * Records a transfer the first time it is seen (from the indexer or a verify-and-record call):
 * one row per (chain, tx, log index), whoever sees it first. Returns the row's id and state.
 */
export async function recordTransfer(sql: Sql, t: ObservedTransfer, source: "indexer" | "topup", config: Config, now: Date): Promise<{ id: string; state: DepositState; created: boolean }> {
  const [owner] = await sql<{ org_id: string }[]>`
    select org_id from deposit_addresses where chain_id = ${t.chainId} and address = ${t.to.toLowerCase()}`;
  const orgId = owner?.org_id ?? null;
  const reason = rejectionReason(t, orgId, config);
  const nano = baseUnitsToNanoUsd(t.amount, config.HUSD_DECIMALS);
  const id = newId("dep");
  const inserted = await sql<{ id: string; state: DepositState }[]>`
    insert into husd_deposits (id, chain_id, tx_hash, log_index, block_number, block_hash, token_address, from_address, to_address,
                               org_id, amount, amount_nano_usd, state, reason, source, seen_at, updated_at)
    values (${id}, ${t.chainId}, ${t.txHash.toLowerCase()}, ${t.logIndex}, ${t.blockNumber.toString()}, ${t.blockHash.toLowerCase()},
            ${t.tokenAddress.toLowerCase()}, ${t.from.toLowerCase()}, ${t.to.toLowerCase()}, ${orgId}, ${t.amount.toString()},
            ${nano === null ? null : nano.toString()}, ${reason ? "rejected" : "seen"}, ${reason}, ${source}, ${now}, ${now})
    on conflict (chain_id, tx_hash, log_index) do nothing
    returning id, state`;
  if (inserted[0]) return { ...inserted[0], created: true };
  // A transfer orphaned by a reorg and mined again (same transaction, same log position, another
  // block) is the same deposit: it gets a new chance instead of being ignored forever.
  const [revived] = await sql<{ id: string; state: DepositState }[]>`
    update husd_deposits set state = 'seen', reason = null, block_number = ${t.blockNumber.toString()}, block_hash = ${t.blockHash.toLowerCase()},
      confirmations = 0, updated_at = ${now}
    where chain_id = ${t.chainId} and tx_hash = ${t.txHash.toLowerCase()} and log_index = ${t.logIndex}
      and state = 'orphaned' and block_hash <> ${t.blockHash.toLowerCase()}
    returning id, state`;
  if (revived) return { ...revived, created: false };
  const [existing] = await sql<{ id: string; state: DepositState }[]>`
    select id, state from husd_deposits where chain_id = ${t.chainId} and tx_hash = ${t.txHash.toLowerCase()} and log_index = ${t.logIndex}`;
  return { ...existing!, created: false };
}
