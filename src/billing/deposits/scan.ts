import type { MaybeChainContext } from "./context.js";
import { recordTransfer, type ObservedTransfer } from "./record.js";

type IndexedRow = {
  chain_id: number;
  token_address: string;
  from: string;
  to: string;
  amount: string;
  ordinal: number;
  block_number: string;
  block_hash: string;
  transaction_hash: string;
  log_index: number;
};

/**
 * The scan's query over Ponder's table. Ponder writes every hex column lowercase (its `hex`
 * column type lowercases on write) and our own columns are lowercase by check constraints
 * (migration 0020), so columns are compared as stored: a function around Ponder's `to` would keep
 * the planner from its index on it (ponder.schema.ts) and read every HUSD transfer ever indexed,
 * every scan. Driven by the deposit addresses, the scan reads only transfers to them.
 */
export function indexedTransfersQuery(ponderSchema: string): string {
  return `select t.chain_id, t.token_address, t."from", t."to", t.amount::text as amount, t.ordinal, t.block_number::text as block_number,
              t.block_hash, t.transaction_hash, t.log_index
       from (select t.*, (row_number() over (partition by t.chain_id, t.transaction_hash, t.block_hash, t.token_address, t."from", t."to", t.amount
                                             order by t.log_index) - 1)::int as ordinal
             from "${ponderSchema}".husd_transfer t
             join deposit_addresses d on d.address = t."to" and d.chain_id = t.chain_id) t
       where not exists (select 1 from husd_deposits h
                         where h.chain_id = t.chain_id and h.tx_hash = t.transaction_hash and h.token_address = t.token_address
                           and h.from_address = t."from" and h.to_address = t."to" and h.amount = t.amount and h.ordinal = t.ordinal
                           and (h.state not in ('orphaned', 'reversed') or h.block_hash = t.block_hash))
       order by t.block_number limit 5000`;
}

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
export async function scanIndexedTransfers(ctx: MaybeChainContext): Promise<number> {
  const { sql, config } = ctx;
  const now = ctx.clock();
  let rows: IndexedRow[];
  try {
    rows = await sql.unsafe<IndexedRow[]>(indexedTransfersQuery(config.PONDER_SCHEMA));
  } catch (err) {
    if ((err as { code?: string }).code === "42P01" || (err as { code?: string }).code === "3F000") return 0; // Ponder has not created its views yet
    throw err;
  }
  let recorded = 0;
  for (const r of rows) {
    const t: ObservedTransfer = {
      chainId: r.chain_id,
      txHash: r.transaction_hash,
      ordinal: r.ordinal,
      logIndex: r.log_index,
      blockNumber: BigInt(r.block_number),
      blockHash: r.block_hash,
      tokenAddress: r.token_address,
      from: r.from,
      to: r.to,
      amount: BigInt(r.amount),
    };
    if ((await recordTransfer(sql, t, "indexer", config, now)).created) recorded++;
  }
  return recorded;
}
