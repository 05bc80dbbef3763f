import { scanIndexedTransfers } from "../../billing/deposits/scan.js";
import { checksPerScan, claimDueDeposits, readFinalEdge } from "../../billing/deposits/schedule.js";
import type { ChainClient } from "../../chain/client.js";
import type { Config } from "../../config.js";
import type { Sql } from "../../db/client.js";
import { enqueueDepositChecks, type Queues } from "../queues.js";

/** What a scan leaves in Redis as its job's result: plain JSON. */
export type DepositScanResult = { recorded: number; checks: number; final_edge: string | null };

/**
 * One scan, every `scanEveryMs`: new transfers Ponder indexed become deposits, then the deposits
 * due for a check (schedule.ts) get one, at most the per-second budget over the interval. Every
 * undecided deposit comes due again by time, so a lost job never strands one.
 */
export async function scanDeposits(
  deps: { sql: Sql; chain: ChainClient; config: Config; queues: Queues },
  now: Date,
  scanEveryMs: number,
): Promise<DepositScanResult> {
  const recorded = await scanIndexedTransfers(deps.sql, deps.config, now);
  const edge = await readFinalEdge(deps.chain, deps.config);
  const due = await claimDueDeposits(deps.sql, now, { limit: checksPerScan(deps.config, scanEveryMs), edge });
  await enqueueDepositChecks(deps.queues, due);
  return { recorded, checks: due.length, final_edge: edge === null ? null : edge.toString() };
}
