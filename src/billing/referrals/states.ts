/**
 * A referral's life (table referrals, migration 0033). One referral per referred org, made when
 * the org is created with a referral code (linkReferral); only its direct referrer ever earns.
 *
 *   linked ─► qualified ─► paid ─► clawed_back     the referred org's first paid top-up (card or
 *     │           │                                HUSD) is credited: qualified, in the credit's
 *     │           ├──────► capped ─► clawed_back   own transaction; after the holding period the
 *     │           │                                payout job grants both sides (capped: the
 *     │           ├──────► canceled                referrer's part is over its monthly cap, only
 *     │           │                                the referred org is paid); the qualifying top-up
 *     └───────────┴──────► rejected                reversed before payout cancels, after payout
 *                                                  claws back what is unspent of the grants;
 *                                                  a self-referral signal rejects.
 *
 * Every change of state is a conditional write on the referral's row (`where state = …`) under
 * its lock, with the grants and the event of that change in the same transaction.
 */
export type ReferralState = "linked" | "qualified" | "paid" | "capped" | "canceled" | "rejected" | "clawed_back";
export const ReferralStates = [
  "linked",
  "qualified",
  "paid",
  "capped",
  "canceled",
  "rejected",
  "clawed_back",
] as const satisfies readonly ReferralState[];

/** Which kind of top-up qualified a referral: a card payment or an HUSD deposit. */
export type QualifyingKind = "card" | "husd";

/**
 * Why a referral was refused (rejected) or canceled. A self-referral: the two orgs share a
 * processor customer, a card (the processor's card fingerprint) or a wallet (the sender of an
 * HUSD deposit to either org, or one org's deposit address sending to the other).
 */
export type ReferralReason =
  | "shared_processor_customer"
  | "shared_card"
  | "shared_wallet"
  | "qualifying_topup_reversed";

export type ReferralRow = {
  id: string;
  referrer_org_id: string;
  referred_org_id: string;
  code: string;
  state: ReferralState;
  reason: ReferralReason | null;
  qualifying_kind: QualifyingKind | null;
  qualifying_ref: string | null;
  qualifying_transaction_id: string | null;
  qualified_at: Date | null;
  referrer_grant_id: string | null;
  referred_grant_id: string | null;
  referrer_amount: bigint | null;
  referred_amount: bigint | null;
  payout_month: Date | null;
  decided_at: Date | null;
  clawed_back_at: Date | null;
  created_at: Date;
  updated_at: Date;
};
