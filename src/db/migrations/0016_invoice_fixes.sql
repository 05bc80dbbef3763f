-- Invoice numbers without gaps. A sequence hands out a number even to a close that then rolls
-- back, and that number is never issued. This counter row is updated by the statement that
-- issues the invoice, in the close's transaction, so a rolled-back close takes its number back.
-- The close updates it last, so concurrent closes queue on it only for their commit.
create table invoice_number_counter (
  singleton boolean primary key default true check (singleton),
  last_number bigint not null check (last_number >= 0)
);
insert into invoice_number_counter (last_number)
select coalesce(max(substring(number from '^INV-([0-9]+)$')::bigint), 0) from invoices;
drop sequence invoice_number_seq;

-- A draft (which lives only inside its close's transaction) has no number until it is issued.
alter table invoices alter column number drop not null;
alter table invoices add constraint invoices_issued_numbered check (status = 'draft' or number is not null);

-- credits_applied went negative when a credit adjustment exceeded the cycle's charges: that
-- credit goes to the balance, and nothing of such an invoice was paid from credits. Only this
-- derived figure is corrected; lines, subtotal and amount due stay as issued.
alter table invoices disable trigger invoices_immutable;
update invoices set credits_applied = 0 where credits_applied < 0;
alter table invoices enable trigger invoices_immutable;
alter table invoices add constraint invoices_credits_applied_nonnegative check (credits_applied >= 0);
