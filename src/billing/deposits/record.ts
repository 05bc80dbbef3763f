import type { Config } from "../../config.js";
import type { Sql } from "../../db/client.js";
import { newId } from "../../ids.js";
import { baseUnitsToNanoUsd } from "./amounts.js";
import { type DepositState, reviveDeposit } from "./lifecycle.js";

/**
 * A transfer as seen on the chain. Its identity is (chain, tx hash, token, from, to, amount,
 * ordinal among identical transfers of the transaction: identity.ts); the rest is where it was seen.
 */
export type ObservedTransfer = {
  chainId: number;
  txHash: string;
  ordinal: number;
  logIndex: number;
  blockNumber: bigint;
  blockHash: string;
  tokenAddress: string;
  from: string;
  to: string;
  amount: bigint;
};

/** Why a transfer will never be credited, decided once when it is first recorded. */
export function rejectionReason(t: ObservedTransfer, orgId: string | null, config: Config): string | null {
  if (t.tokenAddress.toLowerCase() !== config.HUSD_ADDRESS.toLowerCase())
    return "wrong_token: not the configured HUSD contract";
  if (t.chainId !== config.CHAIN_ID) return "wrong_chain";
  if (!orgId) return "unknown_address: not an organization's deposit address";
  if (t.amount < BigInt(config.HUSD_DUST_MINIMUM))
    return `below_dust_minimum: less than ${config.HUSD_DUST_MINIMUM} base units`;
  const nano = baseUnitsToNanoUsd(t.amount, config.HUSD_DECIMALS);
  if (nano === null) return "amount_exceeds_ledger_range: too large to credit; an operator must look";
  if (nano === 0n) return "below_one_nano_usd: smaller than the ledger's unit";
  return null;
}

/**
 * Records a transfer the first time it is seen (from the indexer, a verify-and-record call, or
 * the re-read of a transaction that moved): one row per transfer, identified by its content
 * within its transaction, whoever sees it first. A transfer seen again in another block after it
 * was orphaned or reversed is the same deposit, appearing again: it gets a new chance (and, once
 * final, a new credit of its own). Returns the row's id and state.
 */
export async function recordTransfer(
  sql: Sql,
  t: ObservedTransfer,
  source: "indexer" | "topup" | "reorg",
  config: Config,
  now: Date,
): Promise<{ id: string; state: DepositState; created: boolean }> {
  const [owner] = await sql<{ org_id: string }[]>`
    select org_id from deposit_addresses where chain_id = ${t.chainId} and address = ${t.to.toLowerCase()}`;
  const orgId = owner?.org_id ?? null;
  const reason = rejectionReason(t, orgId, config);
  const nano = baseUnitsToNanoUsd(t.amount, config.HUSD_DECIMALS);
  const id = newId("dep");
  const inserted = await sql<{ id: string; state: DepositState }[]>`
    insert into husd_deposits (id, chain_id, tx_hash, ordinal, log_index, block_number, block_hash, token_address, from_address, to_address,
                               org_id, amount, amount_nano_usd, state, reason, source, seen_at, updated_at)
    values (${id}, ${t.chainId}, ${t.txHash.toLowerCase()}, ${t.ordinal}, ${t.logIndex}, ${t.blockNumber.toString()}, ${t.blockHash.toLowerCase()},
            ${t.tokenAddress.toLowerCase()}, ${t.from.toLowerCase()}, ${t.to.toLowerCase()}, ${orgId}, ${t.amount.toString()},
            ${nano === null ? null : nano.toString()}, ${reason ? "rejected" : "seen"}, ${reason}, ${source}, ${now}, ${now})
    on conflict on constraint husd_deposits_identity do nothing
    returning id, state`;
  if (inserted[0]) return { ...inserted[0], created: true };
  const [existing] = await sql<{ id: string; state: DepositState }[]>`
    select id, state from husd_deposits
    where chain_id = ${t.chainId} and tx_hash = ${t.txHash.toLowerCase()} and token_address = ${t.tokenAddress.toLowerCase()}
      and from_address = ${t.from.toLowerCase()} and to_address = ${t.to.toLowerCase()} and amount = ${t.amount.toString()} and ordinal = ${t.ordinal}`;
  if (!existing) throw new Error(`deposit of ${t.txHash} #${t.ordinal} neither inserted nor found`);
  if (existing.state === "orphaned" || existing.state === "reversed") {
    if (
      await reviveDeposit(
        sql,
        existing.id,
        { blockNumber: t.blockNumber, blockHash: t.blockHash, logIndex: t.logIndex },
        now,
      )
    )
      return { id: existing.id, state: "seen", created: false };
  }
  return { ...existing, created: false };
}
