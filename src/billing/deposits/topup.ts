import {
  decodeEventLog,
  toEventSelector,
  type DecodeEventLogReturnType,
  type Hex,
  type TransactionReceipt,
} from "viem";
import { transferEvent } from "../../chain/erc20-events.js";
import type { Config } from "../../config.js";
import type { Sql } from "../../db/client.js";
import { BillingError } from "../../errors.js";
import type { BillingContext } from "../context.js";
import { depositAddressFor } from "./addresses.js";
import type { MaybeChainContext } from "./context.js";
import { transfersOfTransaction } from "./identity.js";
import type { DepositState } from "./lifecycle.js";
import { recordTransfer } from "./record.js";

/**
 * Verify-and-record: the org tells us a transaction hash; we look it up on the chain at once and
 * record every Transfer in it to the org's deposit address (of any token: a foreign token is
 * recorded as rejected, so the org can see why). The same pipeline then credits it when final.
 */
export async function recordTopup(ctx: MaybeChainContext, input: { orgId: string; txHash: Hex }) {
  const { sql, chain, config } = ctx;
  const { orgId, txHash } = input;
  const now = ctx.clock();
  const address = await depositAddressFor(ctx, { orgId });
  // depositAddressFor answers without the chain only for an address it knew; a lookup needs it.
  if (!chain)
    throw new BillingError("upstream_unavailable", "could not reach the chain to look the transaction up; try again");
  let receipt: TransactionReceipt;
  try {
    receipt = await chain.getTransactionReceipt({ hash: txHash });
  } catch (err) {
    if ((err as Error).name === "TransactionReceiptNotFoundError") {
      throw new BillingError(
        "transaction_not_found",
        `transaction ${txHash} is not on the chain (yet); send it again once it is mined`,
        { details: { param: "tx_hash" } },
      );
    }
    throw new BillingError("upstream_unavailable", "could not reach the chain to look the transaction up; try again", {
      cause: err,
    });
  }
  if (receipt.status !== "success") {
    throw new BillingError("no_deposit_in_transaction", `transaction ${txHash} reverted; it moved no HUSD`, {
      details: { param: "tx_hash" },
    });
  }
  // Anyone can make a transaction with thousands of logs; what one call decodes and writes is bounded.
  if (receipt.logs.length > config.HUSD_TOPUP_MAX_LOGS) {
    throw new BillingError(
      "too_many_logs",
      `transaction ${txHash} has ${receipt.logs.length} logs; top-ups look at transactions of at most ${config.HUSD_TOPUP_MAX_LOGS}. Its transfers to your deposit address are still found and credited from the chain's index`,
      { details: { param: "tx_hash" } },
    );
  }
  // Every HUSD transfer in the transaction to an organization's deposit address is recorded (one
  // to another org's address is a real deposit of theirs), and so is a transfer of any other token
  // to this org's address (rejected, so the org can see why). Transfers to addresses that are no
  // org's are not stored: a caller could otherwise fill the table with them, and such a row would
  // keep the scan (which records only transfers it has no row for) from crediting the transfer
  // once its address becomes an org's.
  const known = await knownDepositAddresses(sql, config, receipt.logs);
  const results: { id: string; state: DepositState; created: boolean }[] = [];
  // A deposit is its content within the transaction; identical transfers are told apart by their order.
  const ordinals = new Map(
    transfersOfTransaction(receipt.logs, receipt.transactionHash).map((t) => [t.logIndex, t.ordinal]),
  );
  const ordinalOf = (logIndex: number) => {
    const ordinal = ordinals.get(logIndex);
    if (ordinal === undefined) throw new Error(`transfer at log ${logIndex} has no ordinal in its transaction`);
    return ordinal;
  };
  for (const log of receipt.logs) {
    let decoded: DecodeEventLogReturnType<[typeof transferEvent]>;
    try {
      decoded = decodeEventLog({ abi: [transferEvent], data: log.data, topics: log.topics });
    } catch {
      continue; // not a Transfer
    }
    const toThisOrg = decoded.args.to.toLowerCase() === address.address.toLowerCase();
    const isHusd = log.address.toLowerCase() === config.HUSD_ADDRESS.toLowerCase();
    if (!toThisOrg && !(isHusd && known.has(decoded.args.to.toLowerCase()))) continue;
    const recorded = await recordTransfer(
      sql,
      {
        chainId: config.CHAIN_ID,
        txHash: receipt.transactionHash,
        ordinal: ordinalOf(log.logIndex),
        logIndex: log.logIndex,
        blockNumber: receipt.blockNumber,
        blockHash: receipt.blockHash,
        tokenAddress: log.address,
        from: decoded.args.from,
        to: decoded.args.to,
        amount: decoded.args.value,
      },
      "topup",
      config,
      now,
    );
    if (toThisOrg) results.push(recorded);
  }
  if (results.length === 0) {
    throw new BillingError(
      "no_deposit_in_transaction",
      `transaction ${txHash} has no transfer to this organization's deposit address ${address.address}`,
      { details: { param: "tx_hash" } },
    );
  }
  return results;
}

/** Which recipients of the receipt's HUSD Transfer logs are organizations' deposit addresses (one query). */
async function knownDepositAddresses(
  sql: Sql,
  config: Config,
  logs: readonly { address: string; topics: readonly string[] }[],
): Promise<Set<string>> {
  const transferTopic = toEventSelector(transferEvent);
  const recipients = new Set<string>();
  for (const l of logs) {
    // Transfer(address indexed from, address indexed to, uint256): the recipient is topic 2.
    if (l.address.toLowerCase() === config.HUSD_ADDRESS.toLowerCase() && l.topics[0] === transferTopic && l.topics[2])
      recipients.add(`0x${l.topics[2].slice(26)}`.toLowerCase());
  }
  if (recipients.size === 0) return recipients;
  const rows = await sql<
    { address: string }[]
  >`select address from deposit_addresses where chain_id = ${config.CHAIN_ID} and address = any(${[...recipients]})`;
  return new Set(rows.map((r) => r.address));
}

export type DepositView = {
  id: string;
  chainId: number;
  txHash: string;
  logIndex: number;
  blockNumber: bigint | null;
  tokenAddress: string;
  from: string | null;
  amount: bigint;
  amountNanoUsd: bigint | null;
  state: DepositState;
  reason: string | null;
  confirmations: bigint;
  seenAt: Date;
  creditedAt: Date | null;
};

export async function listDeposits(
  ctx: BillingContext,
  opts: { orgId: string; limit: number; ids?: string[] },
): Promise<DepositView[]> {
  const { sql } = ctx;
  const { orgId } = opts;
  const rows = await sql<
    {
      id: string;
      chain_id: number;
      tx_hash: string;
      log_index: number;
      block_number: string | null;
      token_address: string;
      from_address: string | null;
      amount: string;
      amount_nano_usd: bigint | null;
      state: DepositState;
      reason: string | null;
      confirmations: bigint;
      seen_at: Date;
      credited_at: Date | null;
    }[]
  >`
    select id, chain_id, tx_hash, log_index, block_number::text, token_address, from_address, amount::text, amount_nano_usd, state, reason,
           confirmations, seen_at, credited_at
    from husd_deposits where org_id = ${orgId} ${opts.ids ? sql`and id = any(${opts.ids})` : sql``}
    order by seen_at desc, id limit ${opts.limit}`;
  return rows.map((r) => ({
    id: r.id,
    chainId: r.chain_id,
    txHash: r.tx_hash,
    logIndex: r.log_index,
    blockNumber: r.block_number === null ? null : BigInt(r.block_number),
    tokenAddress: r.token_address,
    from: r.from_address,
    amount: BigInt(r.amount),
    amountNanoUsd: r.amount_nano_usd,
    state: r.state,
    reason: r.reason,
    confirmations: r.confirmations,
    seenAt: r.seen_at,
    creditedAt: r.credited_at,
  }));
}
