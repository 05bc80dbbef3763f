import { index, onchainTable } from "ponder";

/**
 * Every HUSD Transfer log on the configured chain, as indexed. A row is a hint, not a fact:
 * Ponder deletes it again when its block is reorged out, and the deposit worker re-reads the
 * log from the chain by block hash before any money moves.
 */
export const husdTransfer = onchainTable(
  "husd_transfer",
  (t) => ({
    id: t.text().primaryKey(), // Ponder's event.id: unique per log, stable across re-runs
    chainId: t.integer().notNull(),
    tokenAddress: t.hex().notNull(),
    from: t.hex().notNull(),
    to: t.hex().notNull(),
    amount: t.bigint().notNull(), // uint256 in base units, stored by Ponder as numeric(78,0)
    blockNumber: t.bigint().notNull(),
    blockHash: t.hex().notNull(),
    blockTimestamp: t.bigint().notNull(),
    transactionHash: t.hex().notNull(),
    logIndex: t.integer().notNull(),
  }),
  (table) => ({
    toIdx: index().on(table.to),
    txIdx: index().on(table.transactionHash),
  }),
);
