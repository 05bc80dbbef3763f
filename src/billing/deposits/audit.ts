import type { Hex } from "viem";
import { at } from "../context.js";
import { judgeBlock, readChainView, type BlockVerdict } from "./chain-view.js";
import type { DepositContext } from "./context.js";
import { reconcileTransaction } from "./verify.js";

export type AuditOutcome = {
  checked: number;
  moved: number;
  reversed: number;
  recorded: number;
  undecided: number;
  /** Deposits taken away (orphaned, reversed) seen again in a block that is canonical again. */
  revived: number;
};

/**
 * Re-checks recently credited deposits against the canonical chain. Finality should make this
 * find nothing; if a credited block is ever replaced (a deep reorg, a misconfigured policy),
 * every deposit of each transaction in it is re-read (reconcileTransaction): a credit whose
 * transfer is gone is reversed by a ledger entry with an operator alert (nothing silent), one
 * whose transaction was mined again elsewhere stands only if that block is final. By the same
 * rule as the verifier (chain-view.ts), a node behind a deposit's block proves nothing: such a
 * deposit is counted `undecided` and looked at again on the next run.
 *
 * It also re-checks recent deposits taken away (orphaned, reversed) whose block is canonical
 * again: a reorg that flipped back to that very block, or a node that had answered from a fork.
 * Nothing else would look at them again (the scan sees a deposit again only in another block), so
 * a transfer the chain holds for good would never be credited. Their transaction is re-read, which
 * sees them again; verifyDeposit then decides them from scratch.
 */
export async function auditCreditedDeposits(
  ctx: DepositContext,
  input: { recentBlocks?: bigint } = {},
): Promise<AuditOutcome> {
  const recentBlocks = input.recentBlocks ?? 10_000n;
  // One instant for every reconciliation of this run.
  const fixed = at(ctx, ctx.clock());
  const view = await readChainView(ctx.chain, ctx.config);
  const from = view.head > recentBlocks ? view.head - recentBlocks : 0n;
  const credited = await ctx.sql<{ chain_id: number; tx_hash: Hex; block_number: string; block_hash: string }[]>`
    select chain_id, tx_hash, block_number::text, block_hash from husd_deposits
    where state = 'credited' and chain_id = ${ctx.config.CHAIN_ID} and block_number >= ${from.toString()}`;
  const takenAway = await ctx.sql<{ chain_id: number; tx_hash: Hex; block_number: string; block_hash: string }[]>`
    select distinct chain_id, tx_hash, block_number::text, block_hash from husd_deposits
    where state in ('orphaned', 'reversed') and chain_id = ${ctx.config.CHAIN_ID} and block_number >= ${from.toString()}`;
  const outcome: AuditOutcome = {
    checked: credited.length + takenAway.length,
    moved: 0,
    reversed: 0,
    recorded: 0,
    undecided: 0,
    revived: 0,
  };
  const verdicts = new Map<string, BlockVerdict>();
  const verdictOf = async (d: { block_number: string; block_hash: string }) => {
    const key = `${d.block_number}:${d.block_hash}`;
    let verdict = verdicts.get(key);
    if (!verdict) {
      verdict = await judgeBlock(ctx.chain, { number: BigInt(d.block_number), hash: d.block_hash }, view);
      verdicts.set(key, verdict);
    }
    return verdict;
  };
  const toReread = new Map<string, { chainId: number; txHash: Hex }>();
  for (const d of credited) {
    const verdict = await verdictOf(d);
    if (verdict.kind === "unknown") outcome.undecided++;
    if (verdict.kind === "replaced") toReread.set(d.tx_hash, { chainId: d.chain_id, txHash: d.tx_hash });
  }
  for (const d of takenAway) {
    if ((await verdictOf(d)).kind === "canonical") toReread.set(d.tx_hash, { chainId: d.chain_id, txHash: d.tx_hash });
  }
  for (const tx of toReread.values()) {
    const r = await reconcileTransaction(fixed, tx);
    outcome.moved += r.moved;
    outcome.reversed += r.reversed;
    outcome.recorded += r.recorded;
    outcome.revived += r.revived;
    if (r.undecided) outcome.undecided++;
  }
  return outcome;
}
