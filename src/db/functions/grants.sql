-- What hanzo_app (the API and the workers; roles made by migration 0021) may do in schema
-- billing: read every table, write rows where the app writes them, nothing else. No DELETE
-- (the app deletes nothing), no TRUNCATE, REFERENCES or TRIGGER, no CREATE in the schema, and
-- ownership of nothing, so no ALTER, DROP or DISABLE TRIGGER. Functions run with the caller's
-- rights: metering_batch and the triggers need only these. Two are SECURITY DEFINER:
-- partitions_ensure (it makes tables) and the ledger's has-entries trigger (it reads a partition).
-- hanzo_indexer gets nothing here: Ponder never touches billing.
grant usage on schema billing to hanzo_app;
grant select, insert, update on all tables in schema billing to hanzo_app;
grant usage on all sequences in schema billing to hanzo_app;

-- Rows the app only ever adds (append-only tables, whose triggers refuse changes from anyone).
revoke update on ledger_transactions, ledger_entries, ledger_transaction_orgs, usage_events, invoice_lines, ledger_checks, deposit_addresses
  from hanzo_app;
-- Prices are loaded by an operator (`npm run catalog:load`, as the owner), never by the app.
revoke insert, update on catalog_versions, catalog_rates, catalog_plans from hanzo_app;
-- The migrator's bookkeeping: readable (is the database migrated?), written only by the migrator.
revoke insert, update on schema_migrations, schema_functions from hanzo_app;

-- Tables and sequences that later migrations create, run by this same owner, start with the
-- same rights; a new append-only or owner-only table revokes its exceptions above.
alter default privileges in schema billing grant select, insert, update on tables to hanzo_app;
alter default privileges in schema billing grant usage on sequences to hanzo_app;

-- The webhook delivery log is append-only too (src/db/functions/events.sql: billing_events is
-- updated only to mark its fan-out).
revoke update on webhook_attempts from hanzo_app;

-- A promo code's redemptions are facts (the grant names its row): added, never changed.
revoke update on promo_redemptions from hanzo_app;

-- Credit notes and their lines are documents: written once (credit_note_guards.sql refuses changes
-- from anyone); their card refund (credit_note_refunds) is the part that moves from pending.
revoke update on credit_notes, credit_note_lines from hanzo_app;

-- Monthly partitions (migration 0035, functions/partitions.sql): the app reads and writes them only
-- through their parent tables, whose rights PostgreSQL checks instead. A right on a partition
-- itself would let an insert skip the parent's statement triggers (the ledger's balance check).
-- usage_event_keys is append-only like the events; partitioned_tables is the migrator's.
revoke update on usage_event_keys from hanzo_app;
revoke insert, update on partitioned_tables from hanzo_app;
do $$
declare
  p record;
begin
  for p in
    select c.relname from partitioned_tables t
    join pg_inherits i on i.inhparent = t.table_name::regclass join pg_class c on c.oid = i.inhrelid
  loop
    execute format('revoke all on %I from hanzo_app', p.relname);
  end loop;
end $$;
