-- A settled hold names the usage transaction that charged it (close_transaction_id). Its foreign
-- key was deferred to commit, because the transaction was written after the settle: one
-- referential query per settled hold at every commit, each also locking the transaction's row
-- (16 for a hot organization's call of 16 pairs). The metering batch now writes its usage
-- transaction before the settles that name it (functions/metering.sql, phase 3), and the holds'
-- statement trigger refuses a closing that names a transaction that does not exist, once per
-- distinct transaction, with the foreign-key violation's code (23503: functions/holds.sql), as
-- migration 0039 did for the other references. What the key also guarded cannot happen: a
-- ledger transaction is never deleted and keeps its id (its triggers refuse both).
set constraints all immediate;
alter table holds drop constraint holds_close_transaction_id_fkey;
set constraints all deferred;
