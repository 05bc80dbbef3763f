-- An admin's "end the current cycle now" (POST /v1/admin/cycles/close) may carry an
-- Idempotency-Key; the invoice that request issues keeps it. A retry after its answer was lost
-- then finds that invoice instead of ending the next cycle too: without the key, a retry later than
-- a minute (the guard against repeated early ends, src/billing/invoices/due-cycles.ts) invoiced a
-- second, short cycle and charged its plan again. One invoice per organization and key.
alter table invoices add column request_key text;
create unique index invoices_org_request_key on invoices (org_id, request_key) where request_key is not null;
