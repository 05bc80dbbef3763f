import type { Config } from "../../config.js";
import { parseUsd } from "../../ledger/money.js";

const DAY_MS = 86_400_000;

/** The referral program's terms, from the config (README, "Referrals"). Amounts in nano-USD. */
export type ReferralSettings = {
  linkBaseUrl: string;
  holdMs: number;
  referrerCredit: bigint;
  referredCredit: bigint;
  monthlyCap: bigint;
  grantExpiresMs: number;
};

export function referralSettings(
  config: Pick<
    Config,
    | "REFERRAL_LINK_BASE_URL"
    | "REFERRAL_HOLD_DAYS"
    | "REFERRAL_REFERRER_CREDIT_USD"
    | "REFERRAL_REFERRED_CREDIT_USD"
    | "REFERRAL_MONTHLY_CAP_USD"
    | "REFERRAL_GRANT_EXPIRES_IN_DAYS"
  >,
): ReferralSettings {
  return {
    linkBaseUrl: config.REFERRAL_LINK_BASE_URL,
    holdMs: config.REFERRAL_HOLD_DAYS * DAY_MS,
    referrerCredit: parseUsd(config.REFERRAL_REFERRER_CREDIT_USD),
    referredCredit: parseUsd(config.REFERRAL_REFERRED_CREDIT_USD),
    monthlyCap: parseUsd(config.REFERRAL_MONTHLY_CAP_USD),
    grantExpiresMs: config.REFERRAL_GRANT_EXPIRES_IN_DAYS * DAY_MS,
  };
}

/** The link an org shares: the sign-up page with its code. */
export function referralLink(baseUrl: string, code: string): string {
  const url = new URL(baseUrl);
  url.searchParams.set("ref", code);
  return url.toString();
}
