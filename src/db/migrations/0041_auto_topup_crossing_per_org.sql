-- An auto top-up crossing belongs to a debit transaction and an organization: a metering batch's
-- one usage transaction (migration 0040) can take several organizations below their thresholds,
-- and each must get its crossing (functions/auto_topup.sql inserts on this key).
alter table auto_topup_crossings
  drop constraint auto_topup_crossings_transaction_id_key,
  add constraint auto_topup_crossings_transaction_org_key unique (transaction_id, org_id);
