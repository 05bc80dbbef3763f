import { BillingError } from "../../errors.js";
import type { BillingContext } from "../context.js";

export type AutoTopupDisabledReason = "requires_action" | "declined";

export type AutoTopupSettings = {
  enabled: boolean;
  threshold: bigint;
  amount: bigint;
  monthlyLimit: bigint;
  /** Why the system turned it off (the card needs the customer, or three declines in a row). */
  disabledReason: AutoTopupDisabledReason | null;
  disabledAt: Date | null;
  /** Charged this calendar month (UTC), pending charges included: what counts against the limit. */
  chargedThisMonth: bigint;
};

type SettingsRow = {
  enabled: boolean;
  threshold: bigint;
  amount: bigint;
  monthly_limit: bigint;
  disabled_reason: AutoTopupDisabledReason | null;
  disabled_at: Date | null;
  charged: bigint | null;
};

/** Cards are charged in cents. */
export const CENT = 10_000_000n;

/** The first day (UTC) of the calendar month of `at`, as `YYYY-MM-01`: what a monthly limit counts in. */
export function monthOf(at: Date): string {
  return `${at.toISOString().slice(0, 7)}-01`;
}

const toSettings = (r: SettingsRow): AutoTopupSettings => ({
  enabled: r.enabled,
  threshold: r.threshold,
  amount: r.amount,
  monthlyLimit: r.monthly_limit,
  disabledReason: r.disabled_reason,
  disabledAt: r.disabled_at,
  chargedThisMonth: r.charged ?? 0n,
});

/** The org's auto top-up, or null if it was never set. */
export async function getAutoTopup(ctx: BillingContext, input: { orgId: string }): Promise<AutoTopupSettings | null> {
  const now = ctx.clock();
  const [row] = await ctx.sql<SettingsRow[]>`
    select s.enabled, s.threshold, s.amount, s.monthly_limit, s.disabled_reason, s.disabled_at,
      (select m.charged + m.paid_after_refusal from auto_topup_months m where m.org_id = s.org_id and m.month = ${monthOf(now)}) as charged
    from auto_topup_settings s where s.org_id = ${input.orgId}`;
  return row ? toSettings(row) : null;
}

export type AutoTopupInput = {
  orgId: string;
  enabled: boolean;
  threshold: bigint;
  amount: bigint;
  monthlyLimit: bigint;
};

/**
 * Sets the org's auto top-up as a whole (PUT). Turning it on clears what turned it off and the
 * count of declines: the customer has presumably fixed the card. Whether a default card exists is
 * judged at each crossing, not here: a card may be added after.
 */
export async function setAutoTopup(ctx: BillingContext, input: AutoTopupInput): Promise<AutoTopupSettings> {
  const { orgId, enabled, threshold, amount, monthlyLimit } = input;
  if (amount % CENT !== 0n)
    throw new BillingError("invalid_request", "amount must be whole cents (cards are charged in cents)", {
      details: { param: "amount" },
    });
  if (monthlyLimit < amount)
    throw new BillingError("invalid_request", "monthly_limit must be at least amount", {
      details: { param: "monthly_limit" },
    });
  const now = ctx.clock();
  const [org] = await ctx.sql`select 1 from organizations where id = ${orgId}`;
  if (!org) throw new BillingError("not_found", `no organization ${orgId}`);
  await ctx.sql`
    insert into auto_topup_settings (org_id, enabled, threshold, amount, monthly_limit, updated_at)
    values (${orgId}, ${enabled}, ${threshold.toString()}, ${amount.toString()}, ${monthlyLimit.toString()}, ${now})
    on conflict (org_id) do update set enabled = excluded.enabled, threshold = excluded.threshold, amount = excluded.amount,
      monthly_limit = excluded.monthly_limit, updated_at = excluded.updated_at,
      consecutive_declines = case when excluded.enabled then 0 else auto_topup_settings.consecutive_declines end,
      disabled_reason = case when excluded.enabled then null else auto_topup_settings.disabled_reason end,
      disabled_at = case when excluded.enabled then null else auto_topup_settings.disabled_at end`;
  const settings = await getAutoTopup(ctx, { orgId });
  if (!settings) throw new Error(`auto top-up of ${orgId} vanished after it was written`);
  return settings;
}
