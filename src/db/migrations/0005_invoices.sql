-- Billing cycles, plan subscriptions and invoices.

-- Each organization's cycle is monthly, anchored on a day of the month (1-28, so every month has it).
alter table organizations add column billing_anchor_day int not null default 1 check (billing_anchor_day between 1 and 28);

-- Usage events get a per-insert sequence. Usage of one organization is written under that
-- organization's lock, so for one org the sequence follows commit order; a cycle close (which
-- takes the same lock) can therefore say exactly which events it invoiced: those at or below its
-- cutoff. Anything later, whatever its timestamp, lands on the next invoice.
alter table usage_events add column seq bigint generated always as identity;
create index usage_events_org_seq on usage_events (org_id, seq);

create table subscriptions (
  org_id text primary key references organizations(id),
  plan_id text not null,
  started_at timestamptz not null,
  canceled_at timestamptz
);

create sequence invoice_number_seq;

create table invoices (
  id text primary key,
  number text not null unique,
  org_id text not null references organizations(id),
  period_start timestamptz not null,
  period_end timestamptz not null check (period_end > period_start),
  status text not null check (status in ('draft', 'open', 'paid', 'void')),
  currency text not null default 'USD',
  subtotal nano_usd not null default 0,
  credits_applied nano_usd not null default 0,
  amount_due nano_usd not null default 0 check (amount_due >= 0),
  usage_seq_cutoff bigint not null default 0,
  issued_at timestamptz,
  paid_at timestamptz,
  voided_at timestamptz,
  created_at timestamptz not null,
  unique (org_id, period_start)
);
create index invoices_org_created on invoices (org_id, period_start desc);

create table invoice_lines (
  id bigint generated always as identity primary key,
  invoice_id text not null references invoices(id),
  kind text not null check (kind in ('usage', 'late_usage', 'subscription', 'adjustment')),
  product text,
  model text,
  description text not null,
  quantities jsonb not null default '{}',
  amount nano_usd not null,
  period_start timestamptz,
  period_end timestamptz
);
create index invoice_lines_invoice on invoice_lines (invoice_id);

-- Issued invoices are immutable. Only the lifecycle may move (open -> paid or void), and
-- nothing else on the row may change with it; lines may be written only while the invoice is a draft.
create function invoices_guard() returns trigger language plpgsql as $$
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
  if (new.status, old.status) not in (('paid', 'open'), ('void', 'open')) then
    raise exception 'invoice % is issued: status % cannot become %', old.number, old.status, new.status using errcode = 'insufficient_privilege';
  end if;
  if (new.id, new.number, new.org_id, new.period_start, new.period_end, new.currency, new.subtotal, new.credits_applied,
      new.amount_due, new.usage_seq_cutoff, new.issued_at, new.created_at)
     is distinct from
     (old.id, old.number, old.org_id, old.period_start, old.period_end, old.currency, old.subtotal, old.credits_applied,
      old.amount_due, old.usage_seq_cutoff, old.issued_at, old.created_at) then
    raise exception 'invoice % is issued and immutable; issue a correction instead', old.number using errcode = 'insufficient_privilege';
  end if;
  return new;
end $$;
create trigger invoices_immutable before update or delete on invoices for each row execute function invoices_guard();

create function invoice_lines_guard() returns trigger language plpgsql as $$
declare
  st text;
begin
  select status into st from invoices where id = coalesce(new.invoice_id, old.invoice_id);
  if st is distinct from 'draft' then
    raise exception 'lines of an issued invoice cannot be %', lower(tg_op) || 'd' using errcode = 'insufficient_privilege';
  end if;
  return coalesce(new, old);
end $$;
create trigger invoice_lines_immutable before insert or update or delete on invoice_lines for each row execute function invoice_lines_guard();
create trigger invoice_lines_no_truncate before truncate on invoice_lines for each statement execute function ledger_refuse_change();
create trigger invoices_no_truncate before truncate on invoices for each statement execute function ledger_refuse_change();

-- Corrections to an issued invoice are new documents: an adjustment queued here becomes a line
-- on the organization's next invoice (negative = a credit to the customer).
create table invoice_adjustments (
  id text primary key,
  org_id text not null references organizations(id),
  amount nano_usd not null check (amount <> 0),
  description text not null,
  corrects_invoice_id text references invoices(id),
  idempotency_key text not null,
  applied_invoice_id text references invoices(id),
  created_at timestamptz not null,
  unique (org_id, idempotency_key)
);
