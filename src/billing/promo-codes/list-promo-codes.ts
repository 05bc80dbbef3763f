import { BillingError } from "../../errors.js";
import type { BillingContext } from "../context.js";
import { decodeTimeCursor, encodeTimeCursor, TIME_CURSOR_SQL } from "../time-cursor.js";
import type { Page } from "../transactions.js";
import { type PromoCode, type PromoCodeRow, toPromoCode } from "./promo-code.js";

/** Every promo code with its redemption count, newest first; paged by (created_at, id). */
export async function listPromoCodes(
  ctx: BillingContext,
  opts: { limit: number; cursor?: string },
): Promise<Page<PromoCode>> {
  const { sql } = ctx;
  const after = opts.cursor ? decodeTimeCursor(opts.cursor) : null;
  const rows = await sql<(PromoCodeRow & { ts: string })[]>`
    select *, ${sql.unsafe(TIME_CURSOR_SQL)} as ts from promo_codes
    ${after ? sql`where (created_at, id) < (${after.ts}::timestamptz, ${after.id})` : sql``}
    order by created_at desc, id desc
    limit ${opts.limit + 1}`;
  const page = rows.slice(0, opts.limit);
  const last = page.at(-1);
  return {
    data: page.map(toPromoCode),
    nextCursor: rows.length > opts.limit && last ? encodeTimeCursor(last.ts, last.id) : null,
  };
}

/**
 * Stops a code from being redeemed from now on (redemptions made stay, with their grants).
 * Deactivating a deactivated code changes nothing and answers it as it is.
 */
export async function deactivatePromoCode(ctx: BillingContext, input: { id: string }): Promise<PromoCode> {
  const now = ctx.clock();
  const [row] = await ctx.sql<PromoCodeRow[]>`
    update promo_codes set deactivated_at = coalesce(deactivated_at, ${now})
    where id = ${input.id}
    returning *`;
  if (!row) throw new BillingError("not_found", `no promo code ${input.id}`);
  return toPromoCode(row);
}
