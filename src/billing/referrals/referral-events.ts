import type { TransactionSql } from "../../db/client.js";
import { usdFields } from "../../ledger/money.js";
import { emitEvent } from "../events/emit.js";
import type { ReferralRow } from "./states.js";

export type ReferralEventType =
  | "referral.qualified"
  | "referral.paid"
  | "referral.rejected"
  | "referral.canceled"
  | "referral.clawed_back";

/**
 * The event of a referral's change of state, to one side of it (the referrer hears of every
 * change; the referred org of its own reward being paid or clawed back), in the transaction of
 * the change, once per (type, referral, side). Nothing of the other org beyond its name: no ids,
 * top-up or payment details.
 */
export async function emitReferralEvent(
  tx: TransactionSql,
  e: {
    type: ReferralEventType;
    referral: ReferralRow;
    side: "referrer" | "referred";
    at: Date;
    /** This side's credit: granted (paid), or taken back now (clawed_back; null while waiting for live holds). */
    credit?: bigint | null;
    clawedBack?: bigint | null;
  },
): Promise<void> {
  const r = e.referral;
  const orgId = e.side === "referrer" ? r.referrer_org_id : r.referred_org_id;
  await emitEvent(tx, {
    orgId,
    type: e.type,
    factKey: `${r.id}:${e.side}`,
    data: {
      referral_id: r.id,
      role: e.side,
      state: r.state,
      reason: r.reason,
      qualifying_kind: r.qualifying_kind,
      ...nullableUsd("credit", e.credit ?? null),
      ...(e.type === "referral.clawed_back" ? nullableUsd("clawed_back", e.clawedBack ?? null) : {}),
    },
    at: e.at,
  });
}

function nullableUsd(name: string, nano: bigint | null): Record<string, unknown> {
  return nano === null ? { [name]: null, [`${name}_usd`]: null, [`${name}_nano_usd`]: null } : usdFields(name, nano);
}
