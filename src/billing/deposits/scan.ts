import type { Config } from "../../config.js";
import type { Sql } from "../../db/client.js";
import { recordTransfer, type ObservedTransfer } from "./record.js";

type IndexedRow = {
  chain_id: number; token_address: string; from: string; to: string; amount: string;
  block_number: string; block_hash: string; transaction_hash: string; log_index: number;
};

/**
 * Finds transfers that Ponder indexed to known deposit addresses and records the new ones.
 * Reads Ponder's views schema read-only. A Ponder row is only a hint: verifyDeposit re-reads
 * the chain before any money moves. Returns how many new deposits it recorded.
 */
export async function scanIndexedTransfers(sql: Sql, config: Config, now: Date): Promise<number> {
  let rows: IndexedRow[];
  try {
    rows = await sql.unsafe<IndexedRow[]>(
      `select t.chain_id, t.token_address, t."from", t."to", t.amount::text as amount, t.block_number::text as block_number,
              t.block_hash, t.transaction_hash, t.log_index
       from "${config.PONDER_SCHEMA}".husd_transfer t
       join deposit_addresses d on d.address = lower(t."to") and d.chain_id = t.chain_id
       where not exists (select 1 from husd_deposits h
                         where h.chain_id = t.chain_id and h.tx_hash = lower(t.transaction_hash) and h.log_index = t.log_index
                           and (h.state <> 'orphaned' or h.block_hash = lower(t.block_hash)))
       order by t.block_number limit 5000`,
    );
  } catch (err) {
    if ((err as { code?: string }).code === "42P01" || (err as { code?: string }).code === "3F000") return 0; // Ponder has not created its views yet
    throw err;
  }
  let recorded = 0;
  for (const r of rows) {
    const t: ObservedTransfer = {
      chainId: r.chain_id, txHash: r.transaction_hash, logIndex: r.log_index, blockNumber: BigInt(r.block_number),
      blockHash: r.block_hash, tokenAddress: r.token_address, from: r.from, to: r.to, amount: BigInt(r.amount),
    };
    if ((await recordTransfer(sql, t, "indexer", config, now)).created) recorded++;
  }
  return recorded;
}

/** Deposits still waiting for a decision: the scan re-enqueues them, so a lost job never strands one. */
export async function pendingDepositIds(sql: Sql, limit = 10_000): Promise<string[]> {
  const rows = await sql<{ id: string }[]>`select id from husd_deposits where state in ('seen', 'confirming') order by seen_at limit ${limit}`;
  return rows.map((r) => r.id);
}
