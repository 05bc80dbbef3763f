import type { Config } from "../../config.js";
import type { Sql } from "../../db/client.js";
import { recordTransfer, type ObservedTransfer } from "./record.js";

type IndexedRow = {
  chain_id: number; token_address: string; from: string; to: string; amount: string; ordinal: number;
  block_number: string; block_hash: string; transaction_hash: string; log_index: number;
};

/**
 * Finds transfers that Ponder indexed to known deposit addresses and records the new ones.
 * Reads Ponder's views schema read-only. A Ponder row is only a hint: verifyDeposit re-reads
 * the chain before any money moves, and the scan itself proves nothing about a reorg (Ponder's
 * node may be ahead of or behind the workers'). A transfer is matched to a deposit by its content
 * within its transaction (ordinal among identical transfers, as identity.ts numbers them), never
 * by log index. It is new if no deposit has that content, or seen again if the deposit was
 * orphaned or reversed and Ponder has it in another block. Returns how many new deposits it
 * recorded.
 */
export async function scanIndexedTransfers(sql: Sql, config: Config, now: Date): Promise<number> {
  let rows: IndexedRow[];
  try {
    rows = await sql.unsafe<IndexedRow[]>(
      `select t.chain_id, t.token_address, t."from", t."to", t.amount::text as amount, t.ordinal, t.block_number::text as block_number,
              t.block_hash, t.transaction_hash, t.log_index
       from (select t.*, (row_number() over (partition by t.chain_id, t.transaction_hash, t.block_hash, t.token_address, t."from", t."to", t.amount
                                             order by t.log_index) - 1)::int as ordinal
             from "${config.PONDER_SCHEMA}".husd_transfer t
             join deposit_addresses d on d.address = lower(t."to") and d.chain_id = t.chain_id) t
       where not exists (select 1 from husd_deposits h
                         where h.chain_id = t.chain_id and h.tx_hash = lower(t.transaction_hash) and h.token_address = lower(t.token_address)
                           and h.from_address = lower(t."from") and h.to_address = lower(t."to") and h.amount = t.amount and h.ordinal = t.ordinal
                           and (h.state not in ('orphaned', 'reversed') or h.block_hash = lower(t.block_hash)))
       order by t.block_number limit 5000`,
    );
  } catch (err) {
    if ((err as { code?: string }).code === "42P01" || (err as { code?: string }).code === "3F000") return 0; // Ponder has not created its views yet
    throw err;
  }
  let recorded = 0;
  for (const r of rows) {
    const t: ObservedTransfer = {
      chainId: r.chain_id, txHash: r.transaction_hash, ordinal: r.ordinal, logIndex: r.log_index, blockNumber: BigInt(r.block_number),
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
