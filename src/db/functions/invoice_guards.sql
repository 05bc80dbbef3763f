-- Issued invoices never change. A cycle close writes an invoice as a draft, adds its lines, then
-- issues it (open or paid), all in one transaction; after that only the lifecycle may move:
-- open -> paid | void. Corrections are adjustments on a later invoice (src/billing/invoices.ts).
--
-- invoices_guard (before update or delete on invoices), refuses with insufficient_privilege:
--   deleting an issued invoice; a status change other than open -> paid | void; any change to
--   what was issued (billing_details, the snapshot taken at issue, included); paid_at or voided_at changing without the status.
-- invoice_lines_guard (before insert, update or delete on invoice_lines), refuses with
--   insufficient_privilege: any change that touches an issued invoice, on either side: the
--   invoice a line leaves (update, delete) and the one it joins (insert, update). Both are read
--   FOR SHARE, so a line cannot slip into an invoice that another transaction is issuing.

create or replace function invoices_guard() returns trigger language plpgsql set search_path = billing, pg_temp as $$
begin
  if tg_op = 'DELETE' then
    if old.status <> 'draft' then
      raise exception 'invoice % is issued and cannot be deleted', old.number using errcode = 'insufficient_privilege';
    end if;
    return old;
  end if;
  if old.status = 'draft' then
    return new;
  end if;
  if new.status is distinct from old.status and not (old.status = 'open' and new.status in ('paid', 'void')) then
    raise exception 'invoice % is % and cannot become %: only an open invoice changes status, to paid or void', old.number, old.status, new.status
      using errcode = 'insufficient_privilege';
  end if;
  if (new.id, new.number, new.org_id, new.period_start, new.period_end, new.currency, new.subtotal, new.credits_applied,
      new.amount_due, new.usage_seq_cutoff, new.issued_at, new.created_at, new.billing_details, new.request_key)
     is distinct from
     (old.id, old.number, old.org_id, old.period_start, old.period_end, old.currency, old.subtotal, old.credits_applied,
      old.amount_due, old.usage_seq_cutoff, old.issued_at, old.created_at, old.billing_details, old.request_key) then
    raise exception 'invoice % is issued and immutable; issue a correction instead', old.number using errcode = 'insufficient_privilege';
  end if;
  if new.status = old.status and (new.paid_at, new.voided_at) is distinct from (old.paid_at, old.voided_at) then
    raise exception 'invoice % is %: paid_at and voided_at change only with its status', old.number, old.status using errcode = 'insufficient_privilege';
  end if;
  return new;
end $$;

drop trigger if exists invoices_immutable on invoices;
create trigger invoices_immutable before update or delete on invoices for each row execute function invoices_guard();

create or replace function invoice_lines_guard() returns trigger language plpgsql set search_path = billing, pg_temp as $$
declare
  inv record;
begin
  if tg_op in ('UPDATE', 'DELETE') then
    select number, status into inv from invoices where id = old.invoice_id for share;
    if found and inv.status <> 'draft' then
      raise exception 'invoice % is %: its lines cannot %', inv.number, inv.status,
        case when tg_op = 'DELETE' then 'be deleted'
             when new.invoice_id is distinct from old.invoice_id then 'be moved to another invoice'
             else 'change' end
        using errcode = 'insufficient_privilege';
    end if;
  end if;
  if tg_op = 'INSERT' or (tg_op = 'UPDATE' and new.invoice_id is distinct from old.invoice_id) then
    -- Not found: the foreign key refuses the line, with its own message.
    select number, status into inv from invoices where id = new.invoice_id for share;
    if found and inv.status <> 'draft' then
      raise exception 'invoice % is %: lines cannot be added to it', inv.number, inv.status using errcode = 'insufficient_privilege';
    end if;
  end if;
  return case when tg_op = 'DELETE' then old else new end;
end $$;

drop trigger if exists invoice_lines_immutable on invoice_lines;
create trigger invoice_lines_immutable before insert or update or delete on invoice_lines
  for each row execute function invoice_lines_guard();
