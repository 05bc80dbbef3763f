import type { DepositState } from "../deposits/lifecycle.js";
import type { BillingContext } from "../context.js";
import { decodeTimeCursor, encodeTimeCursor } from "../time-cursor.js";
import type { Page } from "../transactions.js";

/** A card top-up's status; an HUSD deposit keeps its own states (see husd_deposits). */
export type CardTopupStatus = "pending" | "succeeded" | "failed" | "refunded" | "disputed";
export type TopupStatus = CardTopupStatus;

export type TopupView =
  | { id: string; method: "card"; status: CardTopupStatus; amountNanoUsd: bigint; createdAt: Date }
  | { id: string; method: "husd"; status: DepositState; amountNanoUsd: bigint | null; createdAt: Date };

/**
 * The status of a card top-up, from what the webhooks recorded: its payment credited
 * (succeeded), given back in part or whole by a refund (refunded) or taken by a dispute not won
 * (disputed), refused (failed, e.g. another currency), or the session expired unpaid (failed);
 * otherwise pending. One SQL expression over `c` (card_checkouts) and `t` (card_topups).
 */
const CARD_STATUS = `
  case
    when t.payment_id is null then case when c.status = 'expired' then 'failed' else 'pending' end
    when t.state = 'refused' then 'failed'
    when exists (select 1 from card_disputes d where d.payment_id = t.payment_id and d.status <> 'won') then 'disputed'
    when t.state in ('reversed', 'partially_reversed') then 'refunded'
    else 'succeeded'
  end`;

/** The statuses of some card top-ups (card_checkouts ids). */
export async function topupStatuses(ctx: BillingContext, ids: string[]): Promise<Map<string, CardTopupStatus>> {
  const { sql } = ctx;
  const rows = await sql<{ id: string; status: CardTopupStatus }[]>`
    select c.id, ${sql.unsafe(CARD_STATUS)} as status
    from card_checkouts c left join card_topups t on t.payment_id = c.payment_id
    where c.id = any(${ids})`;
  return new Map(rows.map((r) => [r.id, r.status]));
}

/**
 * Every top-up of the org, newest first: card top-ups started here (Checkout Sessions), card
 * payments credited otherwise (e.g. charged off-session, or before this API existed; their id is
 * the credit's ledger transaction), and HUSD deposits. Paged by (created_at, id).
 */
export async function listTopups(
  ctx: BillingContext,
  opts: { orgId: string; limit: number; cursor?: string },
): Promise<Page<TopupView>> {
  const { sql } = ctx;
  const { orgId } = opts;
  const after = opts.cursor ? decodeTimeCursor(opts.cursor) : null;
  const rows = await sql<
    {
      id: string;
      method: "card" | "husd";
      status: string;
      amount_nano_usd: string | null;
      created_at: Date;
      ts: string;
    }[]
  >`
    select id, method, status, amount_nano_usd, created_at,
           to_char(created_at at time zone 'UTC', 'YYYY-MM-DD"T"HH24:MI:SS.US"Z"') as ts
    from (
      select c.id, 'card' as method, ${sql.unsafe(CARD_STATUS)} as status,
             (c.amount_cents * 10000000)::text as amount_nano_usd, c.created_at
      from card_checkouts c left join card_topups t on t.payment_id = c.payment_id
      where c.org_id = ${orgId} and c.session_id is not null
      union all
      select t.credit_transaction_id, 'card', ${sql.unsafe(CARD_STATUS)},
             t.amount_nano_usd::text, t.created_at
      from card_topups t cross join lateral (select 'completed'::text as status) c
      where t.org_id = ${orgId} and t.credit_transaction_id is not null
        and not exists (select 1 from card_checkouts k where k.payment_id = t.payment_id)
      union all
      select d.id, 'husd', d.state, d.amount_nano_usd::text, d.seen_at
      from husd_deposits d where d.org_id = ${orgId}
    ) topups
    ${after ? sql`where (created_at, id) < (${after.ts}::timestamptz, ${after.id})` : sql``}
    order by created_at desc, id desc
    limit ${opts.limit + 1}`;
  const page = rows.slice(0, opts.limit);
  const last = page.at(-1);
  return {
    data: page.map((r) =>
      r.method === "card"
        ? {
            id: r.id,
            method: "card",
            status: r.status as CardTopupStatus,
            amountNanoUsd: BigInt(r.amount_nano_usd ?? "0"),
            createdAt: r.created_at,
          }
        : {
            id: r.id,
            method: "husd",
            status: r.status as DepositState,
            amountNanoUsd: r.amount_nano_usd === null ? null : BigInt(r.amount_nano_usd),
            createdAt: r.created_at,
          },
    ),
    nextCursor: rows.length > opts.limit && last ? encodeTimeCursor(last.ts, last.id) : null,
  };
}
