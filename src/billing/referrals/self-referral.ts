import type { TransactionSql } from "../../db/client.js";
import type { ReferralReason } from "./states.js";

/**
 * Whether two orgs look like one customer, and by what: the same processor customer, a card of
 * the same fingerprint seen on both (saved, or paid with: card_fingerprints), or an HUSD wallet
 * whose deposits to both were credited (or one org's deposit address sending to the other). A
 * deposit never credited (dust, another token) is anyone's to send: a stranger's 1 wei to both
 * orgs must not reject an honest referral. Null when none. Read at qualification and again at
 * payout, as signals can appear during the holding period.
 */
export async function selfReferralSignal(
  tx: TransactionSql,
  a: string,
  b: string,
): Promise<Exclude<ReferralReason, "qualifying_topup_reversed"> | null> {
  const [row] = await tx<{ reason: Exclude<ReferralReason, "qualifying_topup_reversed"> | null }[]>`
    select case
      when exists (select 1 from processor_customers x join processor_customers y on y.customer_id = x.customer_id
                   where x.org_id = ${a} and y.org_id = ${b})
        then 'shared_processor_customer'
      when exists (select 1 from card_fingerprints x join card_fingerprints y on y.fingerprint = x.fingerprint
                   where x.org_id = ${a} and y.org_id = ${b})
        then 'shared_card'
      when exists (select 1 from husd_deposits x join husd_deposits y on y.from_address = x.from_address
                   where x.org_id = ${a} and y.org_id = ${b} and x.from_address is not null
                     and x.credit_count > 0 and y.credit_count > 0)
        or exists (select 1 from husd_deposits d join deposit_addresses w on w.address = d.from_address
                   where (d.org_id = ${a} and w.org_id = ${b}) or (d.org_id = ${b} and w.org_id = ${a}))
        then 'shared_wallet'
    end as reason`;
  return row?.reason ?? null;
}
