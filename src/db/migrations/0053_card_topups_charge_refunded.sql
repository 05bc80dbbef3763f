-- The charge's cumulative amount_refunded as the newest refund event applied to this payment said
-- it, our credit notes' refunds included, and the charge it named. refunded_minor counts only what
-- others refunded: a credit note's card refund still pending was left out of it. When that refund
-- then fails, the refund is applied again from these (src/billing/credit-notes/refund-to-card.ts),
-- as the same event sent again would be; before, the part it hid stayed with the org unless the
-- processor sent another refund event of the charge.
alter table card_topups
  add column charge_refunded_minor bigint not null default 0 check (charge_refunded_minor >= 0),
  add column charge_refunded_charge_id text;
