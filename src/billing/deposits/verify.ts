import type { Hex } from "viem";
import { transferEvent } from "../../chain/erc20-events.js";
import type { Sql } from "../../db/client.js";
import type { DepositContext } from "./context.js";
import { finalityOf, judgeBlock, readChainView, type BlockVerdict } from "./chain-view.js";
import { identityKey, transfersOfTransaction } from "./identity.js";
import {
  creditDeposit,
  markConfirming,
  moveDeposit,
  orphanDeposit,
  reverseDeposit,
  reviveDeposit,
} from "./lifecycle.js";
import type { DepositState } from "./lifecycle.js";
import { recordTransfer } from "./record.js";

type DepositRow = {
  id: string;
  chain_id: number;
  tx_hash: Hex;
  ordinal: number;
  log_index: number;
  block_number: string;
  block_hash: string;
  token_address: Hex;
  from_address: string;
  to_address: string;
  org_id: string | null;
  amount: string;
  amount_nano_usd: bigint | null;
  state: DepositState;
  reason: string | null;
};

export type VerifyOutcome = { state: DepositState; reason?: string; confirmations?: bigint; waiting?: string };

const content = (d: DepositRow) => ({
  tokenAddress: d.token_address,
  from: d.from_address,
  to: d.to_address,
  amount: BigInt(d.amount),
  ordinal: d.ordinal,
});
const isPending = (s: DepositState): s is "seen" | "confirming" => s === "seen" || s === "confirming";
const load = async (sql: Sql, id: string) => (await sql<DepositRow[]>`select * from husd_deposits where id = ${id}`)[0];

/**
 * Decides one pending deposit against the chain, never against the indexer's copy:
 *  1. finality is read first: the node's head and its `finalized` block;
 *  2. the block at the deposit's height must still be the deposit's block (chain-view.ts: a node
 *     behind that height proves nothing, and the deposit waits); if it was replaced, its
 *     transaction is re-read wherever it now is (reconcileTransaction);
 *  3. the transfer, re-read from the chain by block hash, must be in it with the same content;
 *  4. the block must be final by that first read; otherwise the deposit stays `confirming`.
 * Then the credit and the state change commit together (lifecycle.ts).
 */
export async function verifyDeposit(ctx: DepositContext, input: { depositId: string }): Promise<VerifyOutcome> {
  return verifyOnce(ctx, input.depositId, ctx.clock(), true);
}

async function verifyOnce(
  ctx: DepositContext,
  depositId: string,
  now: Date,
  followMove: boolean,
): Promise<VerifyOutcome> {
  const { sql, chain, config } = ctx;
  const d = await load(sql, depositId);
  if (!d) throw new Error(`no deposit ${depositId}`);
  if (!isPending(d.state)) return { state: d.state };
  const at = { number: BigInt(d.block_number), hash: d.block_hash };

  const view = await readChainView(chain, config);
  const verdict = await judgeBlock(chain, at, view);
  const followReplaced = async (): Promise<VerifyOutcome> => {
    await reconcileAt(ctx, { chainId: d.chain_id, txHash: d.tx_hash }, now);
    const after = await load(sql, d.id);
    if (!after) throw new Error(`deposit ${d.id} vanished`);
    // Mined again elsewhere: decide it there now (once) rather than at the next scan.
    if (followMove && isPending(after.state) && after.block_hash !== d.block_hash)
      return verifyOnce(ctx, d.id, now, false);
    return { state: after.state, ...(after.reason ? { reason: after.reason } : {}) };
  };
  if (verdict.kind === "unknown") return { state: d.state, waiting: verdict.why };
  if (verdict.kind === "replaced") return followReplaced();

  // Logs by block hash are that block's whatever the chain does next; a node that no longer has
  // the block by hash (replaced since it was compared) proves nothing now.
  const logs = await chain
    .getLogs({ blockHash: d.block_hash as Hex, address: d.token_address, event: transferEvent })
    .catch(async (err: unknown) => {
      if ((await judgeBlock(chain, at, view)).kind === "canonical") throw err;
      return null;
    });
  if (logs === null) return { state: d.state, waiting: "its block changed while its logs were read" };
  const found = transfersOfTransaction(logs, d.tx_hash).find((t) => identityKey(t) === identityKey(content(d)));
  if (!found) {
    // A block's logs are fixed by its hash: logs that lack the transfer prove nothing until the
    // block is shown replaced (a load-balanced node may answer [] for a block it has not got yet).
    // Replaced since it was compared: re-read where its transaction is now. Else ask again later.
    if ((await judgeBlock(chain, at, view)).kind === "replaced") return followReplaced();
    return { state: d.state, waiting: "the node's logs of its block lack the transfer: asked again later" };
  }

  const { final, confirmations } = finalityOf(view, at.number, config);
  if (!final) {
    await markConfirming(sql, { id: d.id, blockHash: d.block_hash }, { logIndex: found.logIndex, confirmations }, now);
    return { state: "confirming", confirmations };
  }
  const state = await creditDeposit(
    { sql, logger: ctx.logger },
    { id: d.id, blockHash: d.block_hash },
    { logIndex: found.logIndex, confirmations },
    now,
  );
  return { state, confirmations };
}

export type ReconcileOutcome = {
  moved: number;
  reversed: number;
  orphaned: number;
  revived: number;
  recorded: number;
  undecided: boolean;
};

/**
 * A transaction holding deposits has left the block they were seen in (a node at or past that
 * block's height has another block there). Every deposit in it is re-read from where the
 * transaction is now, if anywhere:
 *  - content still there moves with it: a pending deposit counts confirmations from the new
 *    block; a credited one keeps its credit only if the new block is final (finality read
 *    before the new block is compared), and otherwise is reversed and waits there for a new
 *    credit; an orphaned or reversed one is seen again;
 *  - content gone (the transaction is nowhere, reverted, or moves other transfers now) is
 *    reversed if credited, orphaned if pending, once a node at or past its old block's height
 *    shows another block there;
 *  - content new to us, to an organization's deposit address, is a new deposit.
 */
export async function reconcileTransaction(
  ctx: DepositContext,
  input: { chainId: number; txHash: Hex },
): Promise<ReconcileOutcome> {
  return reconcileAt(ctx, input, ctx.clock());
}

async function reconcileAt(
  ctx: DepositContext,
  at: { chainId: number; txHash: Hex },
  now: Date,
): Promise<ReconcileOutcome> {
  const { sql, chain, config } = ctx;
  const outcome: ReconcileOutcome = { moved: 0, reversed: 0, orphaned: 0, revived: 0, recorded: 0, undecided: false };
  const view = await readChainView(chain, config);
  const receipt = await chain.getTransactionReceipt({ hash: at.txHash }).catch((err: Error) => {
    if (err.name === "TransactionReceiptNotFoundError") return null;
    throw err;
  });
  let where: { blockNumber: bigint; blockHash: string } | null = null;
  let transfers: ReturnType<typeof transfersOfTransaction> = [];
  if (receipt) {
    const verdict = await judgeBlock(chain, { number: receipt.blockNumber, hash: receipt.blockHash }, view);
    if (verdict.kind !== "canonical") return { ...outcome, undecided: true }; // mined after the view was read, or moving again: look later
    where = { blockNumber: receipt.blockNumber, blockHash: receipt.blockHash.toLowerCase() };
    if (receipt.status === "success") transfers = transfersOfTransaction(receipt.logs, at.txHash);
  }
  const { final } = where ? finalityOf(view, where.blockNumber, config) : { final: false };
  const logger = ctx.logger;

  const rows = await sql<
    DepositRow[]
  >`select * from husd_deposits where chain_id = ${at.chainId} and tx_hash = ${at.txHash.toLowerCase()} order by ordinal, log_index`;
  const matched = new Set<string>();
  const verdicts = new Map<string, Promise<BlockVerdict>>();
  const oldBlockGone = async (d: DepositRow) => {
    const key = `${d.block_number}:${d.block_hash}`;
    let verdict = verdicts.get(key);
    if (!verdict) {
      verdict = judgeBlock(chain, { number: BigInt(d.block_number), hash: d.block_hash }, view);
      verdicts.set(key, verdict);
    }
    return (await verdict).kind === "replaced";
  };

  for (const d of rows) {
    const decided = { id: d.id, blockHash: d.block_hash };
    const match = transfers.find((t) => identityKey(t) === identityKey(content(d)));
    if (match && where) {
      matched.add(identityKey(match));
      const to = { ...where, logIndex: match.logIndex };
      // Taken away, and the chain has it again: seen again and decided from scratch, even in the
      // block it was taken away in (a reorg that flipped back, a node that answered from a fork)
      // when this view's head is past the one that took it away (reviveDeposit).
      if (d.state === "orphaned" || d.state === "reversed") {
        if (await reviveDeposit(sql, d.id, to, now, view.head)) outcome.revived++;
        continue;
      }
      if (d.block_hash === where.blockHash) continue; // already where the chain has it
      if (d.state === "credited") {
        if (final) {
          if (await moveDeposit(sql, { ...decided, state: "credited" }, to, now)) {
            outcome.moved++;
            logger?.warn(
              { deposit_id: d.id, from_block: d.block_hash, to_block: where.blockHash },
              "credited HUSD deposit was mined again in a final block; its credit stands",
            );
          }
        } else if (
          await reverseDeposit(
            { sql, logger },
            decided,
            `mined again in block ${where.blockNumber} (${where.blockHash}), not final yet: credited again once it is`,
            now,
            { head: view.head, waitAt: to },
          )
        ) {
          outcome.reversed++;
        }
      } else if (isPending(d.state)) {
        if (await moveDeposit(sql, { ...decided, state: d.state }, to, now)) outcome.moved++;
      }
      continue;
    }
    // Its content is not in the transaction as the chain now has it. Taking anything away needs a
    // node at or past the block it was seen in showing another block there.
    if (d.state !== "credited" && !isPending(d.state)) continue;
    if (!(await oldBlockGone(d))) continue;
    const why = !receipt
      ? `its transaction ${at.txHash} is no longer on the chain`
      : receipt.status !== "success"
        ? `its transaction reverted when mined again in block ${receipt.blockNumber}`
        : `its transaction, mined again in block ${receipt.blockNumber}, no longer makes this transfer`;
    if (d.state === "credited") {
      if (
        await reverseDeposit(
          { sql, logger },
          decided,
          `block ${d.block_number} (${d.block_hash}) left the canonical chain and ${why}`,
          now,
          { head: view.head },
        )
      )
        outcome.reversed++;
    } else {
      await orphanDeposit(sql, decided, `reorged_out: ${why}`, now, view.head);
      outcome.orphaned++;
    }
  }

  // New content: a new deposit, if it is HUSD to an organization's deposit address (the rest is
  // not ours to keep, as the indexer's scan does not keep it either).
  const fresh = transfers.filter(
    (t) => !matched.has(identityKey(t)) && t.tokenAddress === config.HUSD_ADDRESS.toLowerCase(),
  );
  if (fresh.length > 0 && where) {
    const known = new Set(
      (
        await sql<
          { address: string }[]
        >`select address from deposit_addresses where chain_id = ${at.chainId} and address = any(${fresh.map((t) => t.to)})`
      ).map((r) => r.address),
    );
    for (const t of fresh.filter((f) => known.has(f.to))) {
      const r = await recordTransfer(
        sql,
        { chainId: at.chainId, txHash: at.txHash, ...t, ...where },
        "reorg",
        config,
        now,
      );
      if (r.created) outcome.recorded++;
    }
  }
  return outcome;
}
