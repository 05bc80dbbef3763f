-- Which payment each card charge is, as the processor's events say (charge.succeeded, a refund or
-- a dispute naming both, payment_intent.succeeded's latest_charge). Kept apart from card_topups,
-- whose row exists only once the payment is credited: a charge.succeeded that arrives first would
-- otherwise lose the link, and a refund or dispute that later names only the charge would wait for
-- ever (src/billing/payments/events.ts, reverseOrAwait). The first link seen stays.
create table card_charges (
  charge_id text primary key,
  payment_id text not null,
  created_at timestamptz not null
);
insert into card_charges (charge_id, payment_id, created_at)
select charge_id, payment_id, created_at from card_topups where charge_id is not null
on conflict do nothing;
