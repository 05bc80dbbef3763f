import { BillingError } from "../../errors.js";

/**
 * Promo codes are case-insensitive: one spelling is stored, upper case. A code is 3 to 32
 * characters, ASCII letters and digits, `-` and `_` inside (it is typed by people and printed in
 * campaigns; nothing Unicode case-folding could turn into another code).
 */
export const PROMO_CODE_PATTERN = /^[A-Za-z0-9][A-Za-z0-9_-]{2,31}$/;

/** The stored spelling of `text` (trimmed, upper case), or null when it cannot be a code. */
export function normalizePromoCode(text: string): string | null {
  const trimmed = text.trim();
  return PROMO_CODE_PATTERN.test(trimmed) ? trimmed.toUpperCase() : null;
}

/** A promo code's terms, as an operator made them. */
export type PromoCode = {
  id: string;
  code: string;
  amount: bigint;
  expiresAt: Date | null;
  grantExpiresInDays: number | null;
  maxRedemptions: number;
  firstTopUpOnly: boolean;
  redemptionCount: number;
  deactivatedAt: Date | null;
  createdAt: Date;
};

export type PromoCodeRow = {
  id: string;
  code: string;
  amount: bigint;
  expires_at: Date | null;
  grant_expires_in_days: number | null;
  max_redemptions: number;
  first_top_up_only: boolean;
  redemption_count: number;
  deactivated_at: Date | null;
  created_at: Date;
};

export const toPromoCode = (r: PromoCodeRow): PromoCode => ({
  id: r.id,
  code: r.code,
  amount: r.amount,
  expiresAt: r.expires_at,
  grantExpiresInDays: r.grant_expires_in_days,
  maxRedemptions: r.max_redemptions,
  firstTopUpOnly: r.first_top_up_only,
  redemptionCount: r.redemption_count,
  deactivatedAt: r.deactivated_at,
  createdAt: r.created_at,
});

/** The largest amount one code may grant per redemption: more is a typo, not a campaign. */
export const PROMO_MAX_AMOUNT = 10_000n * 1_000_000_000n;
export const PROMO_MAX_REDEMPTIONS = 1_000_000;
export const PROMO_MAX_GRANT_DAYS = 3650;

/** Why a code cannot be redeemed now by anyone, or null when it can (the per-org checks come after). */
export function promoCodeRefusal(code: PromoCode, now: Date): BillingError | null {
  if (code.deactivatedAt !== null)
    return new BillingError("promo_code_inactive", `promo code ${code.code} has been deactivated`);
  if (code.expiresAt !== null && code.expiresAt <= now)
    return new BillingError("promo_code_expired", `promo code ${code.code} expired at ${code.expiresAt.toISOString()}`);
  if (code.redemptionCount >= code.maxRedemptions)
    return new BillingError("promo_code_exhausted", `promo code ${code.code} has been redeemed as often as it may be`);
  return null;
}
