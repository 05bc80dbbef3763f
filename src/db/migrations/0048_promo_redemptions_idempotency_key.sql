-- POST /v1/billing/promo-codes/redeem may carry an Idempotency-Key; the redemption it makes keeps
-- it, so a retry after a lost answer is answered with that redemption instead of 409
-- promo_code_already_redeemed (the caller could never tell its own success from an earlier one).
-- One redemption per organization per key.
alter table promo_redemptions add column idempotency_key text;
create unique index promo_redemptions_idempotency_key on promo_redemptions (org_id, idempotency_key)
  where idempotency_key is not null;
