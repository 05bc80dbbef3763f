import { BillingError } from "../errors.js";
import { orgCreditsAccount } from "../ledger/accounts.js";
import type { BillingContext } from "./context.js";
import { shownBalance } from "./money-rules.js";

/**
 * An organization's money, in nano-USD.
 * - credits: what it can spend now (its credits account, less what grants that have expired
 *   take, whether or not the worker has posted their expiry yet). Negative only after a usage
 *   overrun (or a card refund or reversal of money already spent).
 * - held: reserved by live holds (authorized, not yet settled), on the credits account.
 * - balance: credits + held, everything the org has (the credits account's balance).
 */
export type Balance = { balance: bigint; credits: bigint; held: bigint; lowBalanceThreshold: bigint };

export async function getBalance(ctx: BillingContext, input: { orgId: string }): Promise<Balance> {
  const { orgId } = input;
  const now = ctx.clock();
  const [row] = await ctx.sql<
    { credits: bigint; held: bigint; expiry: bigint; lapsed: bigint; low_balance_threshold: bigint }[]
  >`
    select c.balance - c.held as credits, c.held, o.low_balance_threshold,
      grant_expiry_taken(o.id, ${now}) as expiry,
      (select coalesce(sum(x.amount), 0)::bigint from holds x where x.org_id = o.id and x.status = 'active' and x.expires_at <= ${now}) as lapsed
    from organizations o
    join ledger_accounts c on c.id = ${orgCreditsAccount(orgId)}
    where o.id = ${orgId}`;
  if (!row) throw new BillingError("not_found", `no organization ${orgId}`);
  // Shown as they are by the rules, whenever the workers get to post them: holds past their
  // expiry are back in the credits (the sweep or the org's next batch will close them), and
  // grants past theirs are gone (src/db/functions/money_rules.sql).
  const shown = shownBalance({
    credits: row.credits,
    held: row.held,
    lapsedHolds: row.lapsed,
    pendingExpiry: row.expiry,
  });
  return { ...shown, lowBalanceThreshold: row.low_balance_threshold };
}
