-- The card a renewal attempt was sent to (the processor's customer and payment method). A retry of
-- a pending attempt whose answer was lost sends the same request again, to the same card, so the
-- processor replays what it did under the attempt's idempotency key; with the default card of the
-- moment (none, after the customer removed it) the attempt was ended as refused although it may
-- have been charged, and the org moved to the free plan with its renewal paid. Null for attempts
-- made before this column: their retries go to the default card, as before.
alter table renewal_charges add column customer_id text, add column payment_method_id text;
