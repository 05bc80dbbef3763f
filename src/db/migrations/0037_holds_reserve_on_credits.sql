-- Holds become reservations on the organization's credits account, as pending amounts are in
-- TigerBeetle and authorizations on a card: `held` beside the balance is the sum of the org's
-- active holds (kept by the statement triggers on holds, src/db/functions/holds.sql), and a hold
-- moves no money on the ledger. Only usage does, once, from the credits to revenue. Until now a
-- hold was a 'hold' transaction into the org's held account and its settle or expiry another one
-- back: two ledger transactions and five entries per authorized request instead of one and two,
-- most of the metering path's PostgreSQL time (issue #19, bench/RESULTS-metering.md).
--
-- What a customer sees does not change: balance (the credits account), held (the column) and
-- credits (balance - held) are what they were. The held accounts stay, with their history; the
-- money in them now goes back to the credits accounts in one 'hold_reservation' transaction per
-- organization, while the holds it stood for stay active, reserved by the new column.
--
-- Deploy: stop API and worker replicas of the earlier build before migrating; they would post
-- holds into the held accounts that nothing posts back out of.

alter table ledger_accounts add column held nano_usd not null default 0;
alter table ledger_accounts add constraint ledger_accounts_held_check
  check (held >= 0 and (held = 0 or kind = 'org_credits'));

alter table ledger_transactions drop constraint ledger_transactions_kind_check;
alter table ledger_transactions add constraint ledger_transactions_kind_check
  check (kind in ('grant', 'grant_expiry', 'husd_deposit', 'card_topup', 'hold', 'hold_expiry', 'usage',
                  'invoice_settlement', 'reversal',
                  'promo_credit', 'referral_credit', 'referral_clawback', 'credit_note', 'hold_reservation'));

do $$
declare
  -- The ledger's triggers (src/db/functions/ledger.sql) exist here unless a migration of this same
  -- run replaced ledger_entries (0035): then the balances are written here, as they would.
  v_apply boolean := exists (select 1 from pg_trigger where tgname = 'ledger_entries_apply' and tgrelid = 'ledger_entries'::regclass);
  v_guard boolean := exists (select 1 from pg_trigger where tgname = 'ledger_accounts_balance_by_postings' and tgrelid = 'ledger_accounts'::regclass);
  v_now timestamptz := now();
begin
  create temp table moved on commit drop as
    select 'txn_' || replace(gen_random_uuid()::text, '-', '') as txn_id, a.org_id, a.id as held_account,
           'org:' || a.org_id || ':credits' as credits_account, a.balance as amount
    from ledger_accounts a where a.kind = 'org_held' and a.balance <> 0;
  insert into ledger_transactions (id, org_id, kind, idempotency_key, description, metadata, created_at)
  select m.txn_id, m.org_id, 'hold_reservation', 'holds-reserve-on-credits:' || m.org_id,
         'held money back to credits: live holds now reserve it there', '{}'::jsonb, v_now
  from moved m;
  insert into ledger_entries (transaction_id, account_id, amount, created_at)
  select m.txn_id, e.account_id, e.amount, v_now
  from moved m cross join lateral (values (m.held_account, -m.amount), (m.credits_account, m.amount)) e(account_id, amount);

  if v_guard then
    alter table ledger_accounts disable trigger ledger_accounts_balance_by_postings;
  end if;
  if not v_apply then
    update ledger_accounts a set balance = a.balance - m.amount from moved m where a.id = m.held_account;
    update ledger_accounts a set balance = a.balance + m.amount from moved m where a.id = m.credits_account;
  end if;
  update ledger_accounts a set held = h.total
  from (select org_id, sum(amount) as total from holds where status = 'active' group by org_id) h
  where a.id = 'org:' || h.org_id || ':credits';
  if v_guard then
    alter table ledger_accounts enable trigger ledger_accounts_balance_by_postings;
  end if;
end $$;
