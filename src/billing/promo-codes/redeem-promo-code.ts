import { BillingError } from "../../errors.js";
import { newId } from "../../ids.js";
import { type BillingContext, withTransaction } from "../context.js";
import { type CreditGrant, grantCredits, grantOfKey } from "../grants.js";
import { normalizePromoCode, type PromoCodeRow, promoCodeRefusal, toPromoCode } from "./promo-code.js";

export type PromoRedemption = {
  id: string;
  promoCodeId: string;
  code: string;
  orgId: string;
  amount: bigint;
  createdAt: Date;
  grant: CreditGrant;
};

const DAY_MS = 86_400_000;

/**
 * An organization redeems a promo code: one transaction writes the redemption row, counts it on
 * the code and grants its credits (grantCredits, source 'promo', source_id the redemption), or
 * does none of it. The code's row is locked first, so redemptions of one code take turns: each
 * sees the count and the redemptions committed before it, and the count never passes
 * max_redemptions (the table's check is the last guard). Once per organization per code is
 * the unique key (promo_code_id, org_id). Refusals, in this order: unknown_promo_code,
 * promo_code_inactive, promo_code_expired, promo_code_already_redeemed, promo_code_exhausted,
 * promo_code_first_top_up_only.
 *
 * With an idempotency key, a request whose key already made a redemption of this organization is
 * answered with it (`created: false`), whatever became of the code since (a retry after a lost
 * answer learns of its own success); the key with another code is refused (409
 * idempotency_key_reused). One redemption per organization per key is a unique key.
 */
export async function redeemPromoCode(
  ctx: BillingContext,
  input: { orgId: string; code: string; idempotencyKey?: string | undefined },
): Promise<PromoRedemption & { created: boolean }> {
  const now = ctx.clock();
  const code = normalizePromoCode(input.code);
  if (code === null) throw new BillingError("unknown_promo_code", "no such promo code", { details: { param: "code" } });
  return withTransaction(ctx, async (tx) => {
    const { sql } = tx;
    const [row] = await sql<PromoCodeRow[]>`select * from promo_codes where code = ${code} for update`;
    // The key first, under the code's lock: a retry racing its first attempt waits for it here.
    const replayed = input.idempotencyKey ? await redemptionOfKey(tx, input.orgId, input.idempotencyKey) : undefined;
    if (replayed) {
      if (replayed.promo_code_id !== row?.id) throw keyReused();
      const grant = await grantOfKey(tx, {
        orgId: input.orgId,
        source: "promo",
        idempotencyKey: grantKey(replayed.id),
      });
      return { ...toRedemption(replayed, code), grant, created: false };
    }
    if (!row) throw new BillingError("unknown_promo_code", `no promo code ${code}`, { details: { param: "code" } });
    const promo = toPromoCode(row);
    const [mine] = await sql<{ id: string }[]>`
      select id from promo_redemptions where promo_code_id = ${promo.id} and org_id = ${input.orgId}`;
    // Inactive and expired first: a code that is over is over, whoever asks. Then this org's own
    // redemption, so an org that has it is told so even once the code ran out.
    const refusal = promoCodeRefusal(promo, now);
    if (refusal && refusal.code !== "promo_code_exhausted") throw refusal;
    if (mine)
      throw new BillingError("promo_code_already_redeemed", `this organization already redeemed ${code} (${mine.id})`, {
        details: { param: "code", redemption_id: mine.id },
      });
    if (refusal) throw refusal;
    if (promo.firstTopUpOnly && (await hasPaidTopUp(tx, input.orgId)))
      throw new BillingError(
        "promo_code_first_top_up_only",
        `promo code ${code} is for organizations that have not yet paid for a top-up`,
        { details: { param: "code" } },
      );

    const id = newId("prr");
    // The unique key still guards an org that got past the check above some other way; a key
    // taken meanwhile by a redemption of another code (under that code's lock) makes no row.
    const [redemption] = await sql<{ created_at: Date }[]>`
      insert into promo_redemptions (id, promo_code_id, org_id, amount, created_at, idempotency_key)
      values (${id}, ${promo.id}, ${input.orgId}, ${promo.amount.toString()}, ${now}, ${input.idempotencyKey ?? null})
      on conflict (org_id, idempotency_key) where idempotency_key is not null do nothing
      returning created_at`;
    if (!redemption) throw keyReused();
    await sql`update promo_codes set redemption_count = redemption_count + 1 where id = ${promo.id}`;
    const { grant } = await grantCredits(tx, {
      orgId: input.orgId,
      amount: promo.amount,
      reason: `promo code ${code}`,
      expiresAt: promo.grantExpiresInDays === null ? null : new Date(now.getTime() + promo.grantExpiresInDays * DAY_MS),
      idempotencyKey: grantKey(id),
      source: "promo",
      sourceId: id,
    });
    return {
      id,
      promoCodeId: promo.id,
      code,
      orgId: input.orgId,
      amount: promo.amount,
      createdAt: now,
      grant,
      created: true,
    };
  });
}

/** The key of a redemption's grant. */
const grantKey = (redemptionId: string) => `promo:${redemptionId}`;

type RedemptionRow = { id: string; promo_code_id: string; org_id: string; amount: bigint; created_at: Date };

const toRedemption = (r: RedemptionRow, code: string) => ({
  id: r.id,
  promoCodeId: r.promo_code_id,
  code,
  orgId: r.org_id,
  amount: r.amount,
  createdAt: r.created_at,
});

async function redemptionOfKey(ctx: BillingContext, orgId: string, key: string): Promise<RedemptionRow | undefined> {
  const [row] = await ctx.sql<RedemptionRow[]>`
    select id, promo_code_id, org_id, amount, created_at from promo_redemptions
    where org_id = ${orgId} and idempotency_key = ${key}`;
  return row;
}

const keyReused = () =>
  new BillingError("idempotency_key_reused", "this idempotency key already redeemed another promo code", {
    details: { param: "code" },
  });

/**
 * Whether the organization has ever been credited a paid top-up: a card payment or an HUSD
 * deposit, even one later refunded or reversed (as Stripe's first-time-customer restriction
 * counts any successful payment). Grants and promo credits are not payments.
 */
async function hasPaidTopUp(ctx: BillingContext, orgId: string): Promise<boolean> {
  const [row] = await ctx.sql<{ paid: boolean }[]>`
    select exists (select 1 from ledger_transactions
                   where org_id = ${orgId} and kind in ('card_topup', 'husd_deposit')) as paid`;
  return row?.paid ?? false;
}
