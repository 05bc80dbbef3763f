import { encodeFunctionData, type Address, type Hex } from "viem";
import { husdAbi } from "../../abis/index.js";
import { DevRoles } from "../../src/chain/local-devnet.js";
import type { TestChain } from "./chain-stack.js";

/**
 * Reorgs on anvil, the ways a real chain makes them: `anvil_reorg` replaces the last `depth`
 * blocks with as many new ones (the head stays where it was), holding only the signed
 * transactions given, at the given offsets. Re-sending a transaction's raw bytes mines the very
 * same transaction (same hash) again, wherever the new chain puts it.
 */
export function chainReorg(chain: TestChain) {
  const request = (method: string, params: unknown[]) =>
    chain.clients.test.request({ method: method as never, params: params as never });
  const head = () => chain.clients.test.getBlockNumber({ cacheTime: 0 });
  return {
    head,
    /** The signed bytes of a mined transaction, to mine it again after a reorg. */
    raw: async (hash: Hex) => (await request("eth_getRawTransactionByHash", [hash])) as Hex,
    /** Replaces every block from `fromBlock` to the head with new ones; `txs` go into the new block at `offset` from `fromBlock` (in this order). */
    replaceFrom: async (fromBlock: bigint, txs: Hex[] = [], offset = 0) => {
      const depth = Number((await head()) - fromBlock + 1n);
      if (offset >= depth) throw new Error(`offset ${offset} is outside the ${depth} replaced blocks`);
      await request("anvil_reorg", [depth, txs.map((tx) => [tx, offset])]);
    },
    /** Mines the same signed transaction again (automine: it gets the next block). */
    resend: async (raw: Hex) => (await request("eth_sendRawTransaction", [raw])) as Hex,
    /** Mines until `blockNumber` is final for the test policy (3 confirmations, `finalized` two blocks behind the head). */
    mineUntilFinal: async (blockNumber: bigint) => {
      const missing = blockNumber + 3n - (await head());
      if (missing > 0n) await chain.mine(Number(missing));
    },
    /**
     * The block a transaction is in. Waits for its receipt: anvil answers `eth_sendRawTransaction`
     * before the automined block is queryable, so reading the receipt at once can miss it.
     */
    blockOf: async (hash: Hex) =>
      (await chain.clients.test.waitForTransactionReceipt({ hash, pollingInterval: 50, timeout: 60_000 })).blockNumber,
    /**
     * A signed HUSD mint by the owner, not sent: another transaction that emits a Transfer log,
     * to put ahead of a re-mined one in the same block (its log indexes then shift).
     */
    signedMint: async (to: Address, amount: bigint): Promise<Hex> => {
      const owner = chain.clients.wallet(DevRoles.deployer);
      const prepared = await owner.prepareTransactionRequest({
        to: chain.husd,
        data: encodeFunctionData({ abi: husdAbi, functionName: "mint", args: [to, amount] }),
      } as never);
      return owner.signTransaction(prepared as never);
    },
  };
}
