import type { ChainClient } from "../../chain/client.js";
import type { Config } from "../../config.js";
import type { BillingContext } from "../context.js";
import { readChainView, type ChainView } from "./chain-view.js";

/**
 * When an undecided deposit is checked against the chain again, and how many checks there are.
 *
 * A check costs RPC calls (normally 4: head, finalized block, the block at the deposit's height,
 * that block's logs; up to ~13 when its block was replaced), so deposits are not all checked on
 * every scan. Each deposit has a schedule (migration 0020):
 *  - `next_check_at`: a time. A deposit is due at once when recorded, and again whenever it is
 *    seen in another block (lifecycle.ts resets it). Each time the scan takes it, it is put off
 *    by a backoff that doubles from 1 s to at most 60 s, before its check runs: so a check that
 *    fails, waits on a lagging node, or whose job is lost comes back no sooner than that.
 *  - `next_check_block`: "check me when my block can be final". A deposit taken while its block is
 *    beyond the chain's final edge (the highest block final by policy: at or below the
 *    `finalized` block and FINALITY_CONFIRMATIONS deep) is also due as soon as the edge reaches
 *    it, whatever its backoff: a credit waits for the next scan after finality, never for a
 *    60 s timer. A deposit taken at or below the edge is not armed again, so a check that keeps
 *    failing there backs off by time alone.
 *
 * Each scan takes at most DEPOSIT_CHECKS_PER_SECOND × its interval (new deposits first, then those
 * whose block reached the edge, then the longest overdue), and the deposit queue's rate limit
 * holds every worker process together to DEPOSIT_CHECKS_PER_SECOND checks a second, whatever
 * enqueued them. So however many deposits are pending, the RPC sees at most
 * DEPOSIT_CHECKS_PER_SECOND × 4 calls a second for them (plus 2 per scan for the final edge).
 */
export const CHECK_BACKOFF_BASE_MS = 1_000;
export const CHECK_BACKOFF_MAX_MS = 60_000;

/** How long a deposit taken for its `attempts`-th check (1, 2, …) waits before it is due again by time. */
export function checkBackoffMs(attempts: number): number {
  return Math.min(CHECK_BACKOFF_MAX_MS, CHECK_BACKOFF_BASE_MS * 2 ** Math.min(Math.max(attempts - 1, 0), 16));
}

/** How many checks one scan may start: the per-second budget spread over the scan's interval (at least one). */
export function checksPerScan(config: Pick<Config, "DEPOSIT_CHECKS_PER_SECOND">, scanEveryMs: number): number {
  return Math.max(1, Math.floor((config.DEPOSIT_CHECKS_PER_SECOND * scanEveryMs) / 1000));
}

/** The highest block final by policy in this view, or null if none is (no `finalized` block yet). */
export function finalEdge(
  view: ChainView,
  config: Pick<Config, "FINALITY_CONFIRMATIONS" | "FINALITY_REQUIRE_FINALIZED_TAG">,
): bigint | null {
  const deepEnough = view.head - BigInt(config.FINALITY_CONFIRMATIONS) + 1n;
  if (!config.FINALITY_REQUIRE_FINALIZED_TAG) return deepEnough;
  if (view.finalized === null) return null;
  return view.finalized < deepEnough ? view.finalized : deepEnough;
}

/**
 * The final edge as the workers' node sees it now, or null when the node cannot be read: the
 * scan then goes by time alone (the checks it starts will fail loudly if the node is down). A
 * node behind, or ahead of, the one the checks reach only makes a check come early or late;
 * what is credited is decided by the check's own reads (chain-view.ts).
 */
export async function readFinalEdge(
  chain: ChainClient,
  config: Pick<Config, "FINALITY_CONFIRMATIONS" | "FINALITY_REQUIRE_FINALIZED_TAG">,
): Promise<bigint | null> {
  try {
    return finalEdge(await readChainView(chain, config), config);
  } catch {
    return null;
  }
}

/**
 * Takes up to `limit` due pending deposits and puts each off by its backoff, in one statement
 * (rows another scan is taking are skipped): the caller enqueues a check for each id returned.
 * Due: never checked, or its block reached `edge` since it was armed, or its time has come.
 */
export async function claimDueDeposits(
  ctx: BillingContext,
  opts: { limit: number; edge: bigint | null },
): Promise<string[]> {
  const { sql } = ctx;
  const now = ctx.clock();
  const edge = opts.edge === null ? null : opts.edge.toString();
  const rows = await sql<{ id: string }[]>`
    with due as (
      select id from husd_deposits
      where state in ('seen', 'confirming')
        and (next_check_at <= ${now} or next_check_block <= ${edge}::bigint)
      order by case when next_check_at = '-infinity' then 0 when next_check_block <= ${edge}::bigint then 1 else 2 end, next_check_at, id
      limit ${opts.limit}
      for update skip locked
    )
    update husd_deposits h
    set check_attempts = h.check_attempts + 1,
        next_check_at = ${now}::timestamptz + least(${CHECK_BACKOFF_MAX_MS}, ${CHECK_BACKOFF_BASE_MS} * power(2, least(h.check_attempts, 16))) * interval '1 millisecond',
        next_check_block = case when ${edge}::bigint is null or h.block_number > ${edge}::bigint then h.block_number end
    from due
    where h.id = due.id
    returning h.id`;
  return rows.map((r) => r.id);
}
