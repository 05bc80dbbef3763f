import type { DepositContext } from "../../billing/deposits/context.js";
import { scanIndexedTransfers } from "../../billing/deposits/scan.js";
import { checksPerScan, claimDueDeposits, readFinalEdge } from "../../billing/deposits/schedule.js";
import { at } from "../../billing/context.js";
import { enqueueDepositChecks } from "../../jobs/enqueue.js";
import type { Queues } from "../../jobs/queues.js";

/** What a scan leaves in Redis as its job's result: plain JSON. */
export type DepositScanResult = { recorded: number; checks: number; final_edge: string | null };

/**
 * One scan, every `scanEveryMs`: new transfers Ponder indexed become deposits, then the deposits
 * due for a check (schedule.ts) get one, at most the per-second budget over the interval. Every
 * undecided deposit comes due again by time, so a lost job never strands one.
 */
export async function scanDeposits(
  ctx: DepositContext & { queues: Queues },
  input: { scanEveryMs: number },
): Promise<DepositScanResult> {
  const fixed = at(ctx, ctx.clock());
  const recorded = await scanIndexedTransfers(fixed);
  const edge = await readFinalEdge(ctx.chain, ctx.config);
  const due = await claimDueDeposits(fixed, { limit: checksPerScan(ctx.config, input.scanEveryMs), edge });
  await enqueueDepositChecks(ctx.queues, due);
  return { recorded, checks: due.length, final_edge: edge === null ? null : edge.toString() };
}
