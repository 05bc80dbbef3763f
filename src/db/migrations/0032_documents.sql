-- Documents finance can file: the billing details an organization wants on its invoices, a
-- snapshot of them on each invoice at issue, and credit notes that correct an issued invoice
-- without touching it. Guards (immutability, the credit-note total) are in
-- src/db/functions/credit_note_guards.sql and invoice_guards.sql.

-- What the organization wants printed on its documents; replaced whole by PUT /v1/billing/details.
create table org_billing_details (
  org_id text primary key references organizations(id),
  legal_name text not null,
  address_lines text[] not null check (cardinality(address_lines) between 1 and 3),
  city text not null,
  postal_code text,
  country text not null check (country ~ '^[A-Z]{2}$'),
  tax_id text,
  invoice_email text,
  updated_at timestamptz not null
);

-- The billing details as they were when the invoice was issued (null: none were set). Written
-- with the draft, in the close's transaction, so an issued invoice keeps them whatever changes later.
alter table invoices add column billing_details jsonb;

-- Credit-note numbers without gaps, like invoice numbers (migration 0016): the counter row is
-- updated by the transaction that issues the note, so a rolled-back note takes its number back.
create table credit_note_number_counter (
  singleton boolean primary key default true check (singleton),
  last_number bigint not null check (last_number >= 0)
);
insert into credit_note_number_counter (last_number) values (0);

create table credit_notes (
  id text primary key,
  number text not null unique check (number ~ '^CN-[0-9]{6,}$'),
  org_id text not null references organizations(id),
  invoice_id text not null references invoices(id),
  reason text not null,
  -- How the amount goes back: credits (a refund_credit grant) or the card that paid the invoice.
  refund_method text not null check (refund_method in ('credits', 'card')),
  total nano_usd not null check (total > 0),
  billing_details jsonb,
  idempotency_key text not null,
  request_fingerprint text not null,
  issued_at timestamptz not null,
  unique (org_id, idempotency_key)
);
create index credit_notes_invoice on credit_notes (invoice_id);
create index credit_notes_org_issued on credit_notes (org_id, issued_at desc, id desc);

create table credit_note_lines (
  id bigint generated always as identity primary key,
  credit_note_id text not null references credit_notes(id),
  description text not null,
  amount nano_usd not null check (amount > 0)
);
create index credit_note_lines_note on credit_note_lines (credit_note_id);

-- The card refund of a 'card' credit note: the one mutable part (pending until the processor
-- answers). The note itself never changes; this row records the money leaving.
create table credit_note_refunds (
  credit_note_id text primary key references credit_notes(id),
  org_id text not null references organizations(id),
  payment_id text not null,
  amount_minor bigint not null check (amount_minor > 0),
  status text not null check (status in ('pending', 'succeeded', 'failed')),
  processor_refund_id text,
  failure text,
  ledger_transaction_id text references ledger_transactions(id),
  created_at timestamptz not null,
  updated_at timestamptz not null
);
create index credit_note_refunds_payment on credit_note_refunds (payment_id);
