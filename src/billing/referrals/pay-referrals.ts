import { orgCreditsAccount } from "../../ledger/accounts.js";
import { withTransaction, type BillingContext } from "../context.js";
import { grantCredits } from "../grants.js";
import { emitReferralEvent } from "./referral-events.js";
import { selfReferralSignal } from "./self-referral.js";
import type { ReferralSettings } from "./settings.js";
import type { ReferralRow } from "./states.js";

export type PayoutOutcome = "paid" | "capped" | "rejected";

/** First day (UTC) of the calendar month of `at`: the month whose cap a reward counts in. */
export function payoutMonth(at: Date): Date {
  return new Date(Date.UTC(at.getUTCFullYear(), at.getUTCMonth(), 1));
}

/**
 * Pays every referral whose qualifying top-up has stood for the holding period (the
 * `pay-referrals` maintenance job), each in its own transaction (payReferral). Any number of
 * workers may run it at once: each payout is a conditional write under the referral's lock.
 */
export async function payDueReferrals(
  ctx: BillingContext,
  settings: ReferralSettings,
  input: { limit?: number } = {},
): Promise<Record<PayoutOutcome, number>> {
  const now = ctx.clock();
  const due = await ctx.sql<{ id: string }[]>`
    select id from referrals where state = 'qualified' and qualified_at <= ${new Date(now.getTime() - settings.holdMs)}
    order by qualified_at, id limit ${input.limit ?? 200}`;
  const counts: Record<PayoutOutcome, number> = { paid: 0, capped: 0, rejected: 0 };
  for (const { id } of due) {
    const outcome = await payReferral(ctx, settings, { referralId: id });
    if (outcome) counts[outcome]++;
  }
  return counts;
}

/**
 * Pays one referral, once: in one transaction, its state leaves `qualified` and both grants are
 * made (each keyed by the referral, source 'referral'), with their events. Rejected instead when
 * a self-referral signal has appeared since it qualified. The referrer's part is `capped` (not
 * granted, recorded) when it would take the referrer's referral credit for the calendar month
 * (UTC) of the payout past the cap; the referred org is paid all the same. Both orgs' credit
 * accounts are locked first (in id order, as every multi-org path): a referrer's payouts run one
 * at a time, so two of them can never both fit under a cap that holds one. Null when there was
 * nothing to do (not due, or decided by another worker).
 */
export async function payReferral(
  ctx: BillingContext,
  settings: ReferralSettings,
  input: { referralId: string },
): Promise<PayoutOutcome | null> {
  const now = ctx.clock();
  return withTransaction(ctx, async (txc) => {
    const tx = txc.sql;
    const [orgs] = await tx<{ referrer_org_id: string; referred_org_id: string }[]>`
      select referrer_org_id, referred_org_id from referrals where id = ${input.referralId}`;
    if (!orgs) return null;
    const accounts = [orgCreditsAccount(orgs.referrer_org_id), orgCreditsAccount(orgs.referred_org_id)].sort();
    await tx`select id from ledger_accounts where id = any(${accounts}) order by id for update`;
    const [row] = await tx<ReferralRow[]>`
      select * from referrals where id = ${input.referralId} and state = 'qualified'
        and qualified_at <= ${new Date(now.getTime() - settings.holdMs)}
      for update`;
    if (!row) return null;

    const signal = await selfReferralSignal(tx, row.referrer_org_id, row.referred_org_id);
    if (signal) {
      const [rejected] = await tx<ReferralRow[]>`
        update referrals set state = 'rejected', reason = ${signal}, decided_at = ${now}, updated_at = ${now}
        where id = ${row.id} returning *`;
      if (rejected)
        await emitReferralEvent(tx, { type: "referral.rejected", referral: rejected, side: "referrer", at: now });
      return "rejected";
    }

    const month = payoutMonth(now).toISOString().slice(0, 10); // a `date`
    const [earned] = await tx<{ total: string }[]>`
      select coalesce(sum(referrer_amount), 0)::text as total from referrals
      where referrer_org_id = ${row.referrer_org_id} and payout_month = ${month} and referrer_grant_id is not null`;
    const referrerAmount = settings.referrerCredit;
    const capped = referrerAmount > 0n && BigInt(earned?.total ?? "0") + referrerAmount > settings.monthlyCap;
    const expiresAt = new Date(now.getTime() + settings.grantExpiresMs);
    const grant = async (orgId: string, amount: bigint, side: "referrer" | "referred") =>
      amount > 0n
        ? (
            await grantCredits(txc, {
              orgId,
              amount,
              reason: side === "referrer" ? "Referral reward" : "Referral welcome credit",
              expiresAt,
              idempotencyKey: `referral:${row.id}:${side}`,
              source: "referral",
              sourceId: row.id,
            })
          ).grant.id
        : null;
    const referrerGrant = capped ? null : await grant(row.referrer_org_id, referrerAmount, "referrer");
    const referredGrant = await grant(row.referred_org_id, settings.referredCredit, "referred");
    const state = capped ? "capped" : "paid";
    const [paid] = await tx<ReferralRow[]>`
      update referrals set state = ${state}, referrer_grant_id = ${referrerGrant}, referred_grant_id = ${referredGrant},
        referrer_amount = ${referrerAmount.toString()}, referred_amount = ${settings.referredCredit.toString()},
        payout_month = ${month}, decided_at = ${now}, updated_at = ${now}
      where id = ${row.id} and state = 'qualified' returning *`;
    if (!paid) throw new Error(`referral ${row.id} left 'qualified' under its lock`);
    await emitReferralEvent(tx, {
      type: "referral.paid",
      referral: paid,
      side: "referrer",
      at: now,
      credit: referrerGrant ? referrerAmount : null,
    });
    if (referredGrant) {
      await emitReferralEvent(tx, {
        type: "referral.paid",
        referral: paid,
        side: "referred",
        at: now,
        credit: settings.referredCredit,
      });
    }
    return state;
  });
}
