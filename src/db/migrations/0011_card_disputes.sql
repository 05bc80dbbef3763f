-- Card disputes and how they ended. A dispute takes its amount back from the org when it opens
-- (a 'reversal' in the ledger); when it is won (or an inquiry closes without a chargeback) the
-- processor gives the money back to us, and we give it back to the org: a 'card_topup' keyed
-- by the dispute. This row is the dispute's state, so that events arriving in any order move
-- money once: a win seen before the dispute itself means the dispute never takes anything.
create table card_disputes (
  dispute_id text primary key,
  payment_id text not null references card_topups(payment_id),
  org_id text not null references organizations(id),
  status text not null check (status in ('open', 'won', 'lost')),
  reversed_nano_usd nano_usd not null default 0 check (reversed_nano_usd >= 0),     -- taken back when it opened
  reinstated_nano_usd nano_usd not null default 0 check (reinstated_nano_usd >= 0), -- given back when it was won
  created_at timestamptz not null,
  updated_at timestamptz not null,
  check (reinstated_nano_usd <= reversed_nano_usd)
);
create index card_disputes_payment on card_disputes (payment_id);
