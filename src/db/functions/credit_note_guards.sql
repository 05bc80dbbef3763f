-- Credit notes are documents like invoices: once written they never change, and together they
-- never credit more than the invoice they correct. The app checks the same under the invoice's
-- row lock (src/billing/credit-notes/issue-credit-note.ts); these make it true for any writer.
--
-- credit_notes_refuse_change (before update or delete on credit_notes and credit_note_lines,
--   before truncate): refuses with insufficient_privilege, always.
-- credit_notes_within_invoice (before insert on credit_notes): locks the invoice row (FOR UPDATE,
--   so concurrent notes on one invoice queue here), then refuses with check_violation a note on an
--   invoice that is a draft, missing, or another org's, or one that would take the notes of the
--   invoice beyond its subtotal (a note whose card refund failed gave nothing back: not counted).
-- credit_note_lines_add_up (deferred to commit, after insert on credit_notes and
--   credit_note_lines): refuses with check_violation a note whose lines do not sum to its total,
--   so lines can neither be missing nor be added later by another transaction.

create or replace function credit_notes_refuse_change() returns trigger language plpgsql set search_path = billing, pg_temp as $$
begin
  raise exception '% is immutable: % refused; issue another credit note instead', tg_table_name, tg_op
    using errcode = 'insufficient_privilege';
end $$;

drop trigger if exists credit_notes_immutable on credit_notes;
create trigger credit_notes_immutable before update or delete on credit_notes
  for each row execute function credit_notes_refuse_change();
drop trigger if exists credit_notes_no_truncate on credit_notes;
create trigger credit_notes_no_truncate before truncate on credit_notes
  for each statement execute function credit_notes_refuse_change();
drop trigger if exists credit_note_lines_immutable on credit_note_lines;
create trigger credit_note_lines_immutable before update or delete on credit_note_lines
  for each row execute function credit_notes_refuse_change();
drop trigger if exists credit_note_lines_no_truncate on credit_note_lines;
create trigger credit_note_lines_no_truncate before truncate on credit_note_lines
  for each statement execute function credit_notes_refuse_change();

create or replace function credit_notes_within_invoice() returns trigger language plpgsql set search_path = billing, pg_temp as $$
declare
  inv record;
  earlier bigint;
begin
  select number, org_id, status, subtotal into inv from invoices where id = new.invoice_id for update;
  if not found or inv.org_id <> new.org_id then
    raise exception 'credit note % names invoice %, which organization % does not have', new.number, new.invoice_id, new.org_id
      using errcode = 'check_violation';
  end if;
  if inv.status = 'draft' then
    raise exception 'invoice % is a draft: only an issued invoice can be credited', new.invoice_id using errcode = 'check_violation';
  end if;
  -- A note whose card refund failed gave nothing back (final: a refund leaves 'pending' once), so
  -- it leaves room for the same correction another way.
  select coalesce(sum(n.total), 0) into earlier from credit_notes n
    left join credit_note_refunds r on r.credit_note_id = n.id
  where n.invoice_id = new.invoice_id and r.status is distinct from 'failed';
  if earlier + new.total > inv.subtotal then
    raise exception 'credit note % would credit % nano-USD on invoice %, whose subtotal % has % left',
      new.number, new.total, inv.number, inv.subtotal, greatest(inv.subtotal - earlier, 0)
      using errcode = 'check_violation';
  end if;
  return new;
end $$;

drop trigger if exists credit_notes_within_invoice on credit_notes;
create trigger credit_notes_within_invoice before insert on credit_notes
  for each row execute function credit_notes_within_invoice();

create or replace function credit_note_adds_up(note_id text) returns void language plpgsql set search_path = billing, pg_temp as $$
declare
  note_total bigint;
  lines_total bigint;
begin
  select total into note_total from credit_notes where id = note_id;
  select coalesce(sum(amount), 0) into lines_total from credit_note_lines where credit_note_id = note_id;
  if lines_total is distinct from note_total then
    raise exception 'credit note %: lines sum to % nano-USD, its total is %', note_id, lines_total, note_total
      using errcode = 'check_violation';
  end if;
end $$;

create or replace function credit_notes_add_up() returns trigger language plpgsql set search_path = billing, pg_temp as $$
begin
  perform credit_note_adds_up(new.id);
  return null;
end $$;

create or replace function credit_note_lines_add_up() returns trigger language plpgsql set search_path = billing, pg_temp as $$
begin
  perform credit_note_adds_up(new.credit_note_id);
  return null;
end $$;

drop trigger if exists credit_notes_add_up on credit_notes;
create constraint trigger credit_notes_add_up after insert on credit_notes
  deferrable initially deferred for each row execute function credit_notes_add_up();
drop trigger if exists credit_note_lines_add_up on credit_note_lines;
create constraint trigger credit_note_lines_add_up after insert on credit_note_lines
  deferrable initially deferred for each row execute function credit_note_lines_add_up();
