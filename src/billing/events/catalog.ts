/**
 * Every event type a customer can receive, with what it tells. The payload schema of each is in
 * the OpenAPI document's `webhooks` section (src/http/routes/billing/event-schemas.ts); a type
 * listed here without a fact that writes it yet is documented, never sent.
 */
export const EVENT_TYPES = {
  "balance.low": "The balance fell below the organization's low-balance threshold (once per crossing).",
  "balance.depleted": "The balance (credits and live holds) reached zero or below (once per crossing).",
  "deposit.seen": "An HUSD transfer to the organization's deposit address appeared in a block.",
  "deposit.credited": "An HUSD deposit became final and its credit was posted.",
  "deposit.orphaned": "An HUSD deposit's block left the canonical chain before it was final; nothing was credited.",
  "deposit.reversed": "A credited HUSD deposit was found off the canonical chain; its credit was taken back.",
  "topup.succeeded": "A card top-up was paid and credited.",
  "topup.failed": "A card top-up's payment failed; nothing was credited.",
  "credit.granted":
    "Credits were granted to the organization (by an operator, a plan, a promo code, a referral or a refund credit).",
  "auto_topup.disabled": "Automatic top-up was switched off (e.g. repeated card failures or its monthly limit).",
  "invoice.issued": "An invoice was issued at the close of a billing cycle.",
  "invoice.paid": "An invoice was paid (at issue when nothing was due).",
  "invoice.payment_failed": "Charging an invoice's amount due to the saved card failed.",
  "budget.threshold_reached":
    "A budget's spend this period reached 80 % or 100 % of its monthly limit (once each per budget, period and limit).",
  "credit_note.issued":
    "An operator issued a credit note correcting an invoice; its amount goes back as credits or to the card.",
  "referral.qualified": "An org you referred made its first paid top-up; the reward is paid after the holding period.",
  "referral.paid":
    "A referral's reward was granted (to the referrer, unless over its monthly cap, and to the referred org).",
  "referral.rejected":
    "A referral was refused as a self-referral (shared processor customer, card or wallet): no reward.",
  "referral.canceled": "A referral's qualifying top-up was reversed before the payout: no reward.",
  "referral.clawed_back":
    "A referral's qualifying top-up was reversed after the payout: what is unspent of the reward was taken back.",
  "webhook_endpoint.disabled": "A webhook endpoint failed for five days and was disabled.",
  "test.ping": "Sent on request (POST /v1/billing/webhooks/{id}/test) to check an endpoint.",
} as const;
export type EventType = keyof typeof EVENT_TYPES;
export const EventTypeNames = Object.keys(EVENT_TYPES) as [EventType, ...EventType[]];

export function isEventType(s: string): s is EventType {
  return Object.hasOwn(EVENT_TYPES, s);
}
