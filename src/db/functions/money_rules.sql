-- The money rules in SQL: spendable credits and the low-balance crossing (twins of
-- src/billing/money-rules.ts, for the metering batch; test/billing/money-rules.test.ts checks
-- they agree), and the one rule for credit grants that expire, used by every path that reads or
-- moves an organization's money (the metering batch, getBalance, lockOrgs, expireGrants).
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
--   those live holds (grant_expiry_taken).
-- So the order in which the worker posts an expiry, sweeps expired holds and the gateway
-- settles never changes the result; credits go negative only by usage beyond what was
-- authorized (test/model/rules.test.ts runs both orders against each other).

-- Earlier versions of the functions below.
drop function if exists grant_expiry_effective(bigint, bigint, bigint);
drop function if exists grant_expiry_effective(bigint, bigint);
drop function if exists grant_expiry_pending(text, timestamptz);
drop function if exists grant_expiry_waits(text, timestamptz, timestamptz);

-- What an organization can spend now: its credits account less what expired, unposted grants
-- take (grant_expiry_taken). The twin of `spendable` in src/billing/money-rules.ts.
create or replace function spendable_credits(p_credits bigint, p_pending_expiry bigint)
returns bigint language sql immutable parallel safe as $$
  select p_credits - p_pending_expiry
$$;

-- Whether a debit took the balance (credits + held, as posted) from at or above a threshold (the
-- low-balance one, or the auto top-up one) to below it. The twin of `lowBalanceCrossed` in
-- src/billing/money-rules.ts.
create or replace function low_balance_crossed(p_before bigint, p_after bigint, p_threshold bigint)
returns boolean language sql immutable parallel safe as $$
  select p_before >= p_threshold and p_after < p_threshold
$$;

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

-- What expired, unposted grants take from the organization's spendable credits at `p_now`:
-- their unused parts, less the money in live holds taken while they were live. Each hold's money
-- counts once, against the grants it would be drawn from if it settled in full now (those live
-- when it was taken, soonest expiry first; holds in the order they were taken): one hold never
-- shields two grants, nor a grant it could not be charged to. With no such holds it is exactly
-- what posting the expiries takes. Index probes of credit_grants_expiring and holds_active_org.
create or replace function grant_expiry_taken(p_org text, p_now timestamptz)
returns bigint language plpgsql stable parallel safe as $$
declare
  g_created timestamptz[];
  g_expires timestamptz[];
  g_unused bigint[];
  n int;
  h record;
  v_left bigint;
  v_take bigint;
  k int;
begin
  select array_agg(g.created_at order by g.expires_at, g.id), array_agg(g.expires_at order by g.expires_at, g.id),
         array_agg(g.amount - g.consumed order by g.expires_at, g.id)
    into g_created, g_expires, g_unused
  from credit_grants g
  where g.org_id = p_org and g.expires_at is not null and g.expired_at is null and g.expires_at <= p_now;
  n := coalesce(array_length(g_unused, 1), 0);
  if n = 0 then
    return 0;
  end if;
  for h in
    select x.amount, x.created_at from holds x
    where x.org_id = p_org and x.status = 'active' and hold_live_at(x.status, x.expires_at, p_now) and x.created_at < g_expires[n]
    order by x.created_at, x.id
  loop
    v_left := h.amount;
    for k in 1..n loop
      exit when v_left = 0;
      continue when not hold_taken_while_live(h.created_at, g_created[k], g_expires[k]);
      v_take := least(g_unused[k], v_left);
      g_unused[k] := g_unused[k] - v_take;
      v_left := v_left - v_take;
    end loop;
  end loop;
  return (select sum(u) from unnest(g_unused) u)::bigint;
end $$;

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
-- `p_plan_credits_ending_after`: not the included credits of cycles ending after it: a later
-- month's, granted (by the metering path) before a late close of the month before.
drop function if exists consume_expiring_grants(text, bigint, timestamptz);
drop function if exists consume_expiring_grants(text, bigint, timestamptz, timestamptz);
create or replace function consume_expiring_grants(p_org text, p_amount bigint, p_at timestamptz,
                                                   p_plan_credits_ending_after timestamptz default null)
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
      and not (source = 'plan' and expires_at > coalesce(p_plan_credits_ending_after, 'infinity'))
    order by expires_at, id for update
  loop
    exit when v_left = 0;
    v_take := least(g.free, v_left);
    update credit_grants set consumed = consumed + v_take where id = g.id;
    v_left := v_left - v_take;
  end loop;
  return v_left;
end $$;
