import type { Sql, TransactionSql } from "../db/client.js";
import { getBalance } from "./balance.js";
import { type BillingContext, inTransaction } from "./context.js";
import type { GrantSource } from "./grants.js";
import { decodeTimeCursor, encodeTimeCursor, TIME_CURSOR_SQL } from "./time-cursor.js";
import type { Page } from "./transactions.js";

/**
 * A credit grant as the organization sees it (GET /v1/billing/grants).
 *
 * - remaining: what of the grant is still in the balance (credits + held). For a grant that
 *   expires, it is tracked: the amount less what spending drew from it (`consumed`), never more
 *   than the balance leaves after the grants drawn before it, and 0 once it has expired. A grant
 *   without expiry merges into the balance with paid money, and spending is not recorded
 *   against it; its remaining is an attribution, not a tracking: the part of the balance that
 *   expiring grants do not hold, given to the grants without expiry newest first (each at most
 *   its amount). So the remainders of all grants together never exceed the balance, and an org
 *   with no balance left has no grant with anything remaining.
 * - consumed: amount − remaining, except for an expired grant, where it is what was spent
 *   from it before its expiry (the rest, expiredAmount, was taken back).
 * - spendOrder: the order in which spending draws on what remains: 1, 2, … for the grants that
 *   expire (soonest expiry first; grants expiring at the same instant by grant id, which changes
 *   nothing since they expire together), then one shared position after them for every grant
 *   without expiry (the balance). Null for a grant with nothing remaining.
 */
export type GrantView = {
  id: string;
  transactionId: string;
  source: GrantSource;
  sourceId: string | null;
  reason: string;
  amount: bigint;
  remaining: bigint;
  consumed: bigint;
  expiresAt: Date | null;
  expired: boolean;
  /** What the posted expiry took back; null while the expiry is not posted (or for a live grant). */
  expiredAmount: bigint | null;
  spendOrder: number | null;
  createdAt: Date;
};

type Row = {
  id: string;
  transaction_id: string;
  source: GrantSource;
  source_id: string | null;
  reason: string;
  amount: bigint;
  consumed: bigint;
  remaining: string;
  expires_at: Date | null;
  expired: boolean;
  expired_amount: bigint | null;
  spend_order: number | null;
  created_at: Date;
  ts: string;
};

/**
 * Every grant of the organization, newest first, paged by (created_at, id); remaining and the
 * spending order are computed over all its grants, and the balance they are measured against is
 * read in the same snapshot.
 */
export async function listGrants(
  ctx: BillingContext,
  opts: { orgId: string; limit: number; cursor?: string },
): Promise<Page<GrantView>> {
  const after = opts.cursor ? decodeTimeCursor(opts.cursor) : null;
  const now = ctx.clock();
  const read = async (tx: TransactionSql) => {
    const { balance } = await getBalance({ ...ctx, sql: tx, clock: () => now }, { orgId: opts.orgId });
    return tx<Row[]>`
      with grants as (
        select g.*, g.expires_at is not null and g.expires_at <= ${now} as expired
        from credit_grants g where g.org_id = ${opts.orgId}
      ), expiring as (
        -- Live grants that expire, in spending order; each keeps what spending left it, as far
        -- as the balance left after the ones before it goes.
        select id, greatest(0, least(amount - consumed,
                 ${balance.toString()}::bigint - coalesce(sum(amount - consumed) over (w rows between unbounded preceding and 1 preceding), 0)))::bigint as remaining
        from grants where expires_at is not null and not expired
        window w as (order by expires_at, id)
      ), expiring_ranked as (
        select id, remaining,
               case when remaining > 0 then count(*) filter (where remaining > 0) over (order by e.expires_at, e.id) end as spend_order
        from expiring join grants e using (id)
      ), pool as (
        select greatest(0, ${balance.toString()}::bigint - coalesce(sum(remaining), 0))::bigint as unexpiring,
               count(*) filter (where remaining > 0) as ranked
        from expiring_ranked
      ), plain as (
        -- Grants without expiry share what the expiring ones do not hold, newest first.
        select id, greatest(0, least(amount, (select unexpiring from pool)
                 - coalesce(sum(amount) over (order by created_at desc, id desc rows between unbounded preceding and 1 preceding), 0)))::bigint as remaining
        from grants where expires_at is null
      )
      select g.id, g.transaction_id, g.source, g.source_id, g.reason, g.amount, g.expires_at, g.expired,
             g.expired_amount, g.created_at, ${tx.unsafe(TIME_CURSOR_SQL.replaceAll("created_at", "g.created_at"))} as ts,
             coalesce(e.remaining, p.remaining, 0)::text as remaining,
             case when g.expired then g.consumed else g.amount - coalesce(e.remaining, p.remaining, 0) end as consumed,
             coalesce(e.spend_order, case when p.remaining > 0 then (select ranked from pool) + 1 end)::int as spend_order
      from grants g
      left join expiring_ranked e using (id)
      left join plain p using (id)
      ${after ? tx`where (g.created_at, g.id) < (${after.ts}::timestamptz, ${after.id})` : tx``}
      order by g.created_at desc, g.id desc
      limit ${opts.limit + 1}`;
  };
  const rows = inTransaction(ctx)
    ? await read(ctx.sql)
    : await (ctx.sql as Sql).begin("isolation level repeatable read read only", (tx) => read(tx as TransactionSql));
  const page = rows.slice(0, opts.limit);
  const last = page.at(-1);
  return {
    data: page.map((r) => ({
      id: r.id,
      transactionId: r.transaction_id,
      source: r.source,
      sourceId: r.source_id,
      reason: r.reason,
      amount: r.amount,
      remaining: BigInt(r.remaining),
      consumed: r.consumed,
      expiresAt: r.expires_at,
      expired: r.expired,
      expiredAmount: r.expired_amount,
      spendOrder: r.spend_order,
      createdAt: r.created_at,
    })),
    nextCursor: rows.length > opts.limit && last ? encodeTimeCursor(last.ts, last.id) : null,
  };
}
