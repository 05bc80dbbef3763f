-- Where each credit grant came from, so an organization can see what it holds and why
-- (GET /v1/billing/grants), and the ledger kinds of the credit movements that promo codes,
-- referrals and credit notes post. Every grant is still one 'grant'-like ledger transaction
-- from a system account to the org's credits; the kind names its origin.
alter table credit_grants
  add column source text not null default 'operator'
    check (source in ('operator', 'plan', 'promo', 'referral', 'refund_credit')),
  -- The row of the origin (promo redemption, referral, credit note), null for operator and plan grants.
  add column source_id text;

-- Plan grants were made by subscriptions.ts under the key 'plan-credits:<cycle end>'.
update credit_grants g set source = 'plan'
from ledger_transactions t
where t.id = g.transaction_id and t.idempotency_key like g.org_id || ':plan-credits:%';

alter table ledger_transactions drop constraint ledger_transactions_kind_check;
alter table ledger_transactions add constraint ledger_transactions_kind_check
  check (kind in ('grant', 'grant_expiry', 'husd_deposit', 'card_topup', 'hold', 'hold_expiry', 'usage',
                  'invoice_settlement', 'reversal',
                  'promo_credit', 'referral_credit', 'referral_clawback', 'credit_note'));
