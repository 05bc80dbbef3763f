import { ponder } from "ponder:registry";
import { husdTransfer } from "ponder:schema";

// Pure: no network, no side effects. Ponder re-runs this after a reorg and deletes rows of
// orphaned blocks itself, so all this may do is write the log as it is.
ponder.on("HUSD:Transfer", async ({ event, context }) => {
  await context.db.insert(husdTransfer).values({
    id: event.id,
    chainId: context.chain.id,
    tokenAddress: event.log.address,
    from: event.args.from,
    to: event.args.to,
    amount: event.args.value,
    blockNumber: event.block.number,
    blockHash: event.block.hash,
    blockTimestamp: event.block.timestamp,
    transactionHash: event.transaction.hash,
    logIndex: event.log.logIndex,
  });
});
