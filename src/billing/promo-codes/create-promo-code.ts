import { BillingError } from "../../errors.js";
import { newId } from "../../ids.js";
import type { BillingContext } from "../context.js";
import {
  normalizePromoCode,
  PROMO_MAX_AMOUNT,
  PROMO_MAX_GRANT_DAYS,
  PROMO_MAX_REDEMPTIONS,
  type PromoCode,
  type PromoCodeRow,
  toPromoCode,
} from "./promo-code.js";

export type CreatePromoCodeInput = {
  code: string;
  amount: bigint;
  expiresAt: Date | null;
  grantExpiresInDays: number | null;
  maxRedemptions: number;
  firstTopUpOnly: boolean;
};

/**
 * Makes a promo code. The code is the key: making the same code again with the same terms
 * answers the first one (`created: false`), so an operator's retry is safe; other terms are a 409.
 */
export async function createPromoCode(
  ctx: BillingContext,
  input: CreatePromoCodeInput,
): Promise<{ promoCode: PromoCode; created: boolean }> {
  const now = ctx.clock();
  const code = normalizePromoCode(input.code);
  if (code === null)
    throw invalid("code", "code must be 3 to 32 letters, digits, '-' or '_', starting with a letter or digit");
  if (input.amount <= 0n || input.amount > PROMO_MAX_AMOUNT)
    throw invalid("amount", "amount must be greater than zero and at most 10000.00 USD");
  if (
    !Number.isInteger(input.maxRedemptions) ||
    input.maxRedemptions < 1 ||
    input.maxRedemptions > PROMO_MAX_REDEMPTIONS
  )
    throw invalid("max_redemptions", `max_redemptions must be an integer from 1 to ${PROMO_MAX_REDEMPTIONS}`);
  const days = input.grantExpiresInDays;
  if (days !== null && (!Number.isInteger(days) || days < 1 || days > PROMO_MAX_GRANT_DAYS))
    throw invalid(
      "grant_expires_in_days",
      `grant_expires_in_days must be an integer from 1 to ${PROMO_MAX_GRANT_DAYS}`,
    );
  if (input.expiresAt !== null && input.expiresAt <= now)
    throw invalid("expires_at", "expires_at must be in the future");

  const [inserted] = await ctx.sql<PromoCodeRow[]>`
    insert into promo_codes (id, code, amount, expires_at, grant_expires_in_days, max_redemptions, first_top_up_only, created_at)
    values (${newId("promo")}, ${code}, ${input.amount.toString()}, ${input.expiresAt}, ${days}, ${input.maxRedemptions},
            ${input.firstTopUpOnly}, ${now})
    on conflict (code) do nothing
    returning *`;
  if (inserted) return { promoCode: toPromoCode(inserted), created: true };
  const [row] = await ctx.sql<PromoCodeRow[]>`select * from promo_codes where code = ${code}`;
  if (!row) throw new Error(`promo code ${code} conflicted but is not there`);
  const existing = toPromoCode(row);
  const same =
    existing.amount === input.amount &&
    existing.expiresAt?.getTime() === input.expiresAt?.getTime() &&
    existing.grantExpiresInDays === days &&
    existing.maxRedemptions === input.maxRedemptions &&
    existing.firstTopUpOnly === input.firstTopUpOnly;
  if (!same)
    throw new BillingError("conflict", `promo code ${code} already exists with other terms (${existing.id})`, {
      details: { param: "code" },
    });
  return { promoCode: existing, created: false };
}

const invalid = (param: string, message: string) =>
  new BillingError("invalid_request", message, { details: { param } });
