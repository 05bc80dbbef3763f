import type { Logger } from "pino";
import type { ChainClient } from "../../chain/client.js";
import { transferEvent } from "../../chain/erc20-events.js";
import type { Config } from "../../config.js";
import type { Sql } from "../../db/client.js";
import { orgCreditsAccount, SystemAccounts } from "../../ledger/accounts.js";
import { postTransaction } from "../../ledger/post-transaction.js";
import type { DepositState } from "./record.js";

type DepositRow = {
  id: string; chain_id: number; tx_hash: `0x${string}`; log_index: number; block_number: string; block_hash: `0x${string}`;
  token_address: `0x${string}`; from_address: string; to_address: string; org_id: string | null; amount: string;
  amount_nano_usd: bigint | null; state: DepositState; final_at: Date | null;
};

export type VerifyOutcome = { state: DepositState; reason?: string; confirmations?: bigint };

export const creditKey = (d: { chain_id: number; tx_hash: string; log_index: number }) => `${d.chain_id}:${d.tx_hash}:${d.log_index}`;

/**
 * Decides one pending deposit against the chain, never against the indexer's copy:
 *  1. the block at its height must still be the block it was seen in (else: orphaned),
 *  2. the log, re-read from the chain by block hash, must match exactly (else: orphaned),
 *  3. the block must be final by policy: at or below the `finalized` tag (when required) and
 *     at least FINALITY_CONFIRMATIONS deep; otherwise it stays `confirming` and is asked again.
 * Then the credit and the state change commit together, keyed by (chain, tx, log index).
 */
export async function verifyDeposit(deps: { sql: Sql; chain: ChainClient; config: Config; logger?: Logger }, depositId: string, now: Date): Promise<VerifyOutcome> {
  const { sql, chain, config } = deps;
  const [d] = await sql<DepositRow[]>`select * from husd_deposits where id = ${depositId}`;
  if (!d) throw new Error(`no deposit ${depositId}`);
  if (d.state !== "seen" && d.state !== "confirming") return { state: d.state };
  const blockNumber = BigInt(d.block_number);

  // Only "no such block" means reorged away; any other RPC failure is thrown, and the job retries.
  const canonical = await chain.getBlock({ blockNumber }).catch((err: Error) => {
    if (err.name === "BlockNotFoundError") return null;
    throw err;
  });
  if (!canonical) {
    // A node behind the one that reported the block (load-balanced RPC) proves nothing yet.
    const head = await chain.getBlockNumber({ cacheTime: 0 });
    if (blockNumber > head) throw new Error(`RPC node at block ${head} is behind deposit block ${blockNumber}; will retry`);
  }
  if (!canonical || canonical.hash !== d.block_hash) {
    const moved = await findRemined(chain, d.tx_hash, d.log_index);
    if (moved) {
      // The same transaction was mined again with the log at the same place: same deposit, new
      // block, and finality is counted again from there.
      await sql`update husd_deposits set block_number = ${moved.blockNumber.toString()}, block_hash = ${moved.blockHash}, state = 'confirming',
                  confirmations = 0, updated_at = ${now} where id = ${d.id} and state in ('seen', 'confirming')`;
      return { state: "confirming", confirmations: 0n };
    }
    return orphan(sql, d, "reorged_out: its block is no longer on the canonical chain", now);
  }
  const logs = await chain.getLogs({ blockHash: d.block_hash, address: d.token_address, event: transferEvent });
  const log = logs.find((l) => l.transactionHash === d.tx_hash && l.logIndex === d.log_index);
  if (!log || log.args.to?.toLowerCase() !== d.to_address || log.args.value?.toString() !== d.amount || log.args.from?.toLowerCase() !== d.from_address) {
    return orphan(sql, d, "log_mismatch: the chain does not have this transfer in this block", now);
  }

  const latest = await chain.getBlockNumber({ cacheTime: 0 });
  const confirmations = latest >= blockNumber ? latest - blockNumber + 1n : 0n;
  let finalizedOk = true;
  if (config.FINALITY_REQUIRE_FINALIZED_TAG) {
    // A chain without a `finalized` block yet (BlockNotFoundError) is simply not final.
    const finalized = await chain.getBlock({ blockTag: "finalized" }).catch((err: Error) => {
      if (err.name === "BlockNotFoundError") return null;
      throw err;
    });
    finalizedOk = finalized !== null && finalized.number !== null && finalized.number >= blockNumber;
  }
  if (!finalizedOk || confirmations < BigInt(config.FINALITY_CONFIRMATIONS)) {
    await sql`update husd_deposits set state = 'confirming', confirmations = ${confirmations.toString()}, updated_at = ${now}
              where id = ${d.id} and state in ('seen', 'confirming')`;
    return { state: "confirming", confirmations };
  }
  return credit(deps, d, confirmations, now);
}

async function orphan(sql: Sql, d: DepositRow, reason: string, now: Date): Promise<VerifyOutcome> {
  await sql`update husd_deposits set state = 'orphaned', reason = ${reason}, updated_at = ${now} where id = ${d.id} and state in ('seen', 'confirming')`;
  return { state: "orphaned", reason };
}

async function credit(deps: { sql: Sql; logger?: Logger }, d: DepositRow, confirmations: bigint, now: Date): Promise<VerifyOutcome> {
  return deps.sql.begin(async (tx) => {
    // The row lock makes concurrent verifiers of the same deposit take turns; the second sees 'credited'.
    const [row] = await tx<DepositRow[]>`select * from husd_deposits where id = ${d.id} for update`;
    if (!row || (row.state !== "seen" && row.state !== "confirming")) return { state: row?.state ?? "orphaned" };
    const amount = row.amount_nano_usd!;
    const posted = await postTransaction(tx, {
      kind: "husd_deposit",
      orgId: row.org_id,
      idempotencyKey: creditKey(row),
      description: "HUSD deposit",
      metadata: { deposit_id: row.id, tx_hash: row.tx_hash, log_index: row.log_index, chain_id: row.chain_id },
      entries: [
        { accountId: orgCreditsAccount(row.org_id!), amount },
        { accountId: SystemAccounts.husd, amount: -amount },
      ],
      createdAt: now,
    });
    await tx`update husd_deposits set state = 'credited', credited_at = ${now}, final_at = coalesce(final_at, ${now}),
               confirmations = ${confirmations.toString()}, credit_transaction_id = ${posted.transactionId}, updated_at = ${now}
             where id = ${row.id}`;
    deps.logger?.info({ deposit_id: row.id, org_id: row.org_id, nano_usd: amount.toString() }, "HUSD deposit credited");
    return { state: "credited" as const, confirmations };
  });
}

/** Where a transaction now sits if it was mined again after a reorg with this log at the same index. */
export async function findRemined(chain: ChainClient, txHash: `0x${string}`, logIndex: number) {
  const receipt = await chain.getTransactionReceipt({ hash: txHash }).catch((err: Error) => {
    if (err.name === "TransactionReceiptNotFoundError") return null;
    throw err;
  });
  if (!receipt || receipt.status !== "success" || !receipt.logs.some((l) => l.logIndex === logIndex)) return null;
  return { blockNumber: receipt.blockNumber, blockHash: receipt.blockHash.toLowerCase() as `0x${string}` };
}
