-- What the card paid this month for auto top-up charges we had ended as refused (the answer lost,
-- the retry refused) and the processor charged after all: their late success is counted here, in
-- full, beside `charged` (the month's decided charges, still never over monthly_limit by its check).
-- A crossing is charged only while charged + paid_after_refusal + amount stays within the limit.
-- Before, a late success was added to `charged` only up to the limit, and a later refusal of the
-- charge in flight took the month below what the card had paid (src/billing/auto-topup/charges.ts).
alter table auto_topup_months add column paid_after_refusal nano_usd not null default 0 check (paid_after_refusal >= 0);
