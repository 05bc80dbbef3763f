-- The one rule for credit grants that expire, used by every path that reads or moves an
-- organization's money (the metering batch, getBalance, lockOrgs, expireGrants).
--
-- A grant's unused part (amount - consumed) stops being spendable at its expires_at. Money that
-- was already held for a request when the grant expired is not taken from under that request:
-- - a hold is presumed funded by the grants live when it was taken (spending consumes grants
--   before paid credits), so its settled usage is charged to them, even after they expire;
-- - an expired grant's expiry is posted once no hold taken while it was live is still live
--   (active and not past its own expires_at; holds live at most a day), and then takes exactly
--   the unused part, whatever was debited since the expiry: usage reported without a hold after
--   the expiry is owed on top, as it would be had the expiry been posted at the instant;
-- - until then, what it takes from the spendable credits is its unused part less the money in
--   those live holds.
-- So the order in which the worker posts an expiry, sweeps expired holds and the gateway
-- settles never changes the result; credits go negative only by usage beyond what was
-- authorized (test/model/rules.test.ts runs both orders against each other).

-- Earlier signatures of the functions below.
drop function if exists grant_expiry_effective(bigint, bigint, bigint);
drop function if exists grant_expiry_waits(text, timestamptz, timestamptz);

-- Whether a hold counts as live at `p_now`: a hold past its expires_at is as good as expired,
-- whether or not the sweep has closed it yet. (Queries also say `status = 'active'` literally,
-- so that the planner can use the partial index holds_active_org.)
create or replace function hold_live_at(p_status text, p_expires_at timestamptz, p_now timestamptz)
returns boolean language sql immutable parallel safe as $$
  select p_status = 'active' and p_expires_at > p_now
$$;

-- Whether a hold taken at `p_hold_created` was taken while a grant was live: the hold is then
-- presumed funded by it (inlined by the planner wherever it is used).
create or replace function hold_taken_while_live(p_hold_created timestamptz, p_grant_created timestamptz, p_grant_expires timestamptz)
returns boolean language sql immutable parallel safe as $$
  select p_hold_created >= p_grant_created and p_hold_created < p_grant_expires
$$;

-- Whether a grant's expiry must wait: a live hold of its organization was taken while it was live.
create or replace function grant_expiry_waits(p_org text, p_grant_created timestamptz, p_grant_expires timestamptz, p_now timestamptz)
returns boolean language sql stable parallel safe as $$
  select exists (select 1 from holds h
                 where h.org_id = p_org and h.status = 'active' and hold_live_at(h.status, h.expires_at, p_now)
                   and hold_taken_while_live(h.created_at, p_grant_created, p_grant_expires))
$$;

-- What expired, unposted grants take from the spendable credits right now: `p_pending` their
-- unused parts, less `p_held_before` the money in live holds taken while they were live. With no
-- such holds it is exactly what posting the expiries takes.
create or replace function grant_expiry_effective(p_pending bigint, p_held_before bigint)
returns bigint language sql immutable parallel safe as $$
  select greatest(p_pending - p_held_before, 0)
$$;

-- An organization's expired grants whose expiry is not posted yet (probes of the partial index
-- credit_grants_expiring and of holds_active_org): their unused parts, and the money in live
-- holds taken while one of them was live.
create or replace function grant_expiry_pending(p_org text, p_now timestamptz, out pending bigint, out held_before bigint)
language sql stable parallel safe as $$
  with expired as (
    select g.amount - g.consumed as unused, g.created_at, g.expires_at from credit_grants g
    where g.org_id = p_org and g.expires_at is not null and g.expired_at is null and g.expires_at <= p_now
  )
  select coalesce((select sum(unused) from expired), 0)::bigint,
         coalesce((select sum(h.amount) from holds h
                   where h.org_id = p_org and h.status = 'active' and hold_live_at(h.status, h.expires_at, p_now)
                     and exists (select 1 from expired e where hold_taken_while_live(h.created_at, e.created_at, e.expires_at))), 0)::bigint
$$;

-- Grants whose expiry may be posted now: past expires_at, not posted, and no live hold of
-- their organization was taken while they were live.
create or replace function grant_expiry_due(p_now timestamptz, p_limit int)
returns table (id text, org_id text) language sql stable as $$
  select g.id, g.org_id from credit_grants g
  where g.expires_at <= p_now and g.expired_at is null and not grant_expiry_waits(g.org_id, g.created_at, g.expires_at, p_now)
  order by g.expires_at, g.id
  limit p_limit
$$;

-- Records that `p_amount` of spending was drawn from the organization's grants that were live
-- at `p_at` (the hold's creation for usage that settles a hold, otherwise now) and are not
-- posted as expired, soonest expiry first, so that what expires is only what was left unused.
-- Returns the part no such grant covered. Call it under the organization's lock.
create or replace function consume_expiring_grants(p_org text, p_amount bigint, p_at timestamptz)
returns bigint language plpgsql as $$
declare
  v_left bigint := p_amount;
  v_take bigint;
  g record;
begin
  if p_amount <= 0 then
    return 0;
  end if;
  for g in
    select id, amount - consumed as free from credit_grants
    where org_id = p_org and expires_at is not null and expired_at is null and consumed < amount
      and hold_taken_while_live(p_at, created_at, expires_at)
    order by expires_at, id for update
  loop
    exit when v_left = 0;
    v_take := least(g.free, v_left);
    update credit_grants set consumed = consumed + v_take where id = g.id;
    v_left := v_left - v_take;
  end loop;
  return v_left;
end $$;
