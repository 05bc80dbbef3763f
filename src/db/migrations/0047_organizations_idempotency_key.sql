-- POST /v1/admin/orgs may carry an Idempotency-Key; the organization it makes keeps it, so a retry
-- after a lost answer finds that organization instead of making a second one (with its own credits
-- account and, with a referral code, a second referral link). One organization per key.
alter table organizations add column idempotency_key text;
create unique index organizations_idempotency_key on organizations (idempotency_key) where idempotency_key is not null;
