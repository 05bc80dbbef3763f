-- The ledger transaction that returns the amounts of expired holds to the credits is kind
-- 'hold_expiry', as a grant's expiry is 'grant_expiry' (README: "Holds" has the vocabulary).
-- Rows posted as 'release' carry exactly that movement, so they are relabelled in place: kind
-- and the fixed description only, never an amount or an entry. The immutability trigger is off
-- for this one statement, inside the migration's transaction, which only the owner can do.
alter table ledger_transactions drop constraint ledger_transactions_kind_check;

alter table ledger_transactions disable trigger ledger_transactions_immutable;
update ledger_transactions
set kind = 'hold_expiry',
    description = case when description = 'expired holds released' then 'expired holds returned to credits' else description end
where kind = 'release';
alter table ledger_transactions enable trigger ledger_transactions_immutable;

alter table ledger_transactions add constraint ledger_transactions_kind_check
  check (kind in ('grant', 'grant_expiry', 'husd_deposit', 'card_topup', 'hold', 'hold_expiry', 'usage',
                  'invoice_settlement', 'reversal'));
