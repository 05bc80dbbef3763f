import type { TransactionSql } from "../../db/client.js";
import { clawBackGrant } from "../grants.js";
import { lockOrgs } from "../org-locks.js";
import { emitReferralEvent } from "./referral-events.js";
import type { QualifyingKind, ReferralRow } from "./states.js";

/**
 * Locks the credits accounts of the org whose top-up is being reversed and, when that top-up
 * qualified a referral that a reversal may still cancel or claw back, of its referrer: in id
 * order, as every multi-org path locks them. Call it before anything else of the reversal locks
 * the org: a clawback locks the referrer's account too, and the payout job holds both
 * (payReferral) while it waits for the referral's row, so a reversal that took the referred org's
 * account first and the referrer's after deadlocked with it. Who qualified is read without a
 * lock: the referrer of an org never changes, and the state only moves on from these.
 */
export async function lockOrgAndReferrer(
  tx: TransactionSql,
  input: { orgId: string; kind: QualifyingKind; ref: string; now: Date },
): Promise<void> {
  const [link] = await tx<{ referrer_org_id: string }[]>`
    select referrer_org_id from referrals
    where qualifying_kind = ${input.kind} and qualifying_ref = ${input.ref} and state in ('qualified', 'paid', 'capped')`;
  await lockOrgs(tx, link ? [input.orgId, link.referrer_org_id] : [input.orgId], input.now);
}

/**
 * A top-up was reversed (a card refund or dispute, even in part; an HUSD deposit reorged out).
 * If it qualified a referral: before payout the referral is canceled; after payout what is
 * unspent of both grants is clawed back (clawBackGrant: the grant-expiry rule, posted as
 * 'referral_clawback'). Terminal either way: a re-credit of the same deposit does not qualify
 * again. Call in the reversal's own transaction, which took lockOrgAndReferrer first.
 */
export async function referralTopupReversed(
  tx: TransactionSql,
  input: { kind: QualifyingKind; ref: string; now: Date },
): Promise<void> {
  const { now } = input;
  const [row] = await tx<ReferralRow[]>`
    select * from referrals where qualifying_kind = ${input.kind} and qualifying_ref = ${input.ref} for update`;
  if (!row) return;
  if (row.state === "qualified") {
    const [canceled] = await tx<ReferralRow[]>`
      update referrals set state = 'canceled', reason = 'qualifying_topup_reversed', decided_at = ${now}, updated_at = ${now}
      where id = ${row.id} returning *`;
    if (canceled)
      await emitReferralEvent(tx, { type: "referral.canceled", referral: canceled, side: "referrer", at: now });
    return;
  }
  if (row.state !== "paid" && row.state !== "capped") return;
  const taken = {
    referrer: row.referrer_grant_id ? await clawBackGrant(tx, row.referrer_grant_id, now) : null,
    referred: row.referred_grant_id ? await clawBackGrant(tx, row.referred_grant_id, now) : null,
  };
  const [clawed] = await tx<ReferralRow[]>`
    update referrals set state = 'clawed_back', reason = 'qualifying_topup_reversed', clawed_back_at = ${now}, updated_at = ${now}
    where id = ${row.id} returning *`;
  if (!clawed) return;
  for (const side of ["referrer", "referred"] as const) {
    const grantId = side === "referrer" ? clawed.referrer_grant_id : clawed.referred_grant_id;
    if (!grantId) continue;
    await emitReferralEvent(tx, {
      type: "referral.clawed_back",
      referral: clawed,
      side,
      at: now,
      credit: side === "referrer" ? clawed.referrer_amount : clawed.referred_amount,
      clawedBack: taken[side],
    });
  }
}
