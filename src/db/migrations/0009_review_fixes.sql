-- A plan change takes effect at the next cycle: the current cycle keeps (and is charged for) the
-- plan whose included credits it already received.
alter table subscriptions add column pending_plan_id text;

-- A reused adjustment key with a different request is refused rather than silently replayed.
alter table invoice_adjustments add column request_fingerprint text;
