import type { Hex } from "viem";
import type { ChainClient } from "../../chain/client.js";
import type { Config } from "../../config.js";

/**
 * What one RPC node can tell about a deposit's block: the one rule that the verifier, the audit
 * and the re-read of a moved transaction all judge by. (The scan proves nothing: a row Ponder
 * indexed is a hint, and what it shows is handed to them.)
 *
 *  - Finality is read first (the node's head and its `finalized` block), and only then is the
 *    block at the deposit's height compared with the deposit's block. A block replaced between
 *    two reads is then seen replaced, never credited on a finality read after the comparison.
 *  - Only a node at or past a block's height can prove that block replaced or gone. A node behind
 *    it (load-balanced, slow, restarting) proves nothing: the deposit stays as it is, and is
 *    looked at again later.
 */
export type ChainView = { head: bigint; finalized: bigint | null };

export type BlockVerdict = { kind: "canonical" } | { kind: "replaced"; by: Hex } | { kind: "unknown"; why: string };

/** The node's head and finalized block, read before anything is compared against them. */
export async function readChainView(
  chain: ChainClient,
  config: Pick<Config, "FINALITY_REQUIRE_FINALIZED_TAG">,
): Promise<ChainView> {
  const head = await chain.getBlockNumber({ cacheTime: 0 });
  if (!config.FINALITY_REQUIRE_FINALIZED_TAG) return { head, finalized: null };
  // A chain without a `finalized` block yet (BlockNotFoundError) is simply not final anywhere.
  const finalized = await chain.getBlock({ blockTag: "finalized" }).catch((err: Error) => {
    if (err.name === "BlockNotFoundError") return null;
    throw err;
  });
  return { head, finalized: finalized?.number ?? null };
}

/**
 * Is this block (number and hash) the node's block at that height? Any RPC failure is thrown:
 * it proves nothing either, and the caller's job is retried.
 */
export async function judgeBlock(
  chain: ChainClient,
  block: { number: bigint; hash: string },
  view: ChainView,
): Promise<BlockVerdict> {
  if (view.head < block.number)
    return { kind: "unknown", why: `RPC node at block ${view.head} is behind block ${block.number}` };
  const canonical = await chain.getBlock({ blockNumber: block.number }).catch((err: Error) => {
    if (err.name === "BlockNotFoundError") return null;
    throw err;
  });
  // The node was past the height when its head was read and no longer has it: it went back
  // (a node restarting, or another node behind the same URL). Nothing is proven until it is past again.
  if (!canonical?.hash) return { kind: "unknown", why: `RPC node no longer has block ${block.number}` };
  return canonical.hash.toLowerCase() === block.hash.toLowerCase()
    ? { kind: "canonical" }
    : { kind: "replaced", by: canonical.hash };
}

/** Final by policy, as of the view: at least FINALITY_CONFIRMATIONS deep and, when required, at or below the finalized block. */
export function finalityOf(
  view: ChainView,
  blockNumber: bigint,
  config: Pick<Config, "FINALITY_CONFIRMATIONS" | "FINALITY_REQUIRE_FINALIZED_TAG">,
) {
  const confirmations = view.head >= blockNumber ? view.head - blockNumber + 1n : 0n;
  const finalizedOk =
    !config.FINALITY_REQUIRE_FINALIZED_TAG || (view.finalized !== null && view.finalized >= blockNumber);
  return { confirmations, final: finalizedOk && confirmations >= BigInt(config.FINALITY_CONFIRMATIONS) };
}
