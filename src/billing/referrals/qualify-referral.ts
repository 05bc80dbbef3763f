import type { TransactionSql } from "../../db/client.js";
import { emitReferralEvent } from "./referral-events.js";
import { selfReferralSignal } from "./self-referral.js";
import type { QualifyingKind, ReferralRow } from "./states.js";

/**
 * The least a top-up must credit to qualify a referral: the card top-up's default minimum. Below
 * it, an HUSD deposit (credited from 0.01 HUSD) would earn both orgs their rewards for a cent.
 */
export const MIN_QUALIFYING_TOPUP_NANO_USD = 5_000_000_000n;

/**
 * The referred org's first paid top-up of at least MIN_QUALIFYING_TOPUP_NANO_USD was credited:
 * its referral (if any, and still `linked`) becomes `qualified`, naming that top-up. Call in the
 * credit's own transaction, after the credit is posted: a rolled-back credit qualifies nothing.
 * Two top-ups credited at the same moment both reach here; the row's lock and the
 * `state = 'linked'` condition let exactly one through (and the unique (qualifying_kind,
 * qualifying_ref) keeps a top-up from qualifying twice). A self-referral signal already present
 * rejects the referral at once.
 */
export async function qualifyReferral(
  tx: TransactionSql,
  input: { orgId: string; kind: QualifyingKind; ref: string; transactionId: string; amount: bigint; now: Date },
): Promise<void> {
  const { now } = input;
  if (input.amount < MIN_QUALIFYING_TOPUP_NANO_USD) return;
  const [row] = await tx<ReferralRow[]>`
    update referrals set state = 'qualified', qualifying_kind = ${input.kind}, qualifying_ref = ${input.ref},
      qualifying_transaction_id = ${input.transactionId}, qualified_at = ${now}, updated_at = ${now}
    where referred_org_id = ${input.orgId} and state = 'linked'
    returning *`;
  if (!row) return;
  const signal = await selfReferralSignal(tx, row.referrer_org_id, row.referred_org_id);
  if (signal) {
    const [rejected] = await tx<ReferralRow[]>`
      update referrals set state = 'rejected', reason = ${signal}, decided_at = ${now}, updated_at = ${now}
      where id = ${row.id} returning *`;
    if (rejected)
      await emitReferralEvent(tx, { type: "referral.rejected", referral: rejected, side: "referrer", at: now });
    return;
  }
  await emitReferralEvent(tx, { type: "referral.qualified", referral: row, side: "referrer", at: now });
}
