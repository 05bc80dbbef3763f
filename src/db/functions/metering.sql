-- The metering hot path: one call of metering_batch per group commit of the API
-- (src/billing/metering.ts), in phases that each read what the previous ones decided:
--
--   1. metering_lock_orgs        lock the batch's organizations (id order) and read their money
--   2. metering_expire_holds     holds past their expiry expire (their amount is no longer
--                                reserved) before anything else can look at them: the holds of
--                                every organization that is authorizing, and every hold a usage
--                                event names
--   3. metering_settle           usage events: recorded once per key, each settling its hold;
--                                the batch's usage transaction row, before the holds naming it
--  3b. metering_budget_spend     the period counters of the budgets the events fall under
--   4. metering_decide           authorizations: replayed, refused or held, in order, against
--                                the hard budgets and the locked balance
--   5. metering_post             the ledger entries and the rows, in one statement each
--
-- Hold states change only in phases 2 and 3, by UPDATEs guarded on status = 'active', and
-- later phases read the table: a hold is settled or expired exactly once, whatever arrives in
-- the same batch. A hold is a reservation on its organization's credits account (`held`, kept
-- by the triggers of holds.sql), not a ledger movement: only usage moves money, as one 'usage'
-- transaction for the batch's organizations (its row written in phase 3, its entries in phase 5),
-- so the ledger's statement triggers run once per batch and their per-transaction checks once.
--
-- Inputs are JSON arrays of objects shaped as the composite types below (the TypeScript side
-- builds them in src/billing/holds.ts and usage.ts); element k of usage or authorizations is
-- request k, and requests point at their organization by its 1-based index in p_orgs.
-- Amounts in JSON are strings (JSON numbers cannot carry every bigint).
--
-- Outputs:
-- usage_outcomes[k]: 'recorded' (no hold) | 'settled' (settled its hold) | 'already_closed'
--   (its hold was settled or had expired: nothing was held for it) | 'duplicate' (same key and
--   payload as an earlier event) | 'idempotency_key_reused' (same key, another payload) |
--   'unknown_organization' | 'hold_not_found' (no such hold for this organization) |
--   'debt_limit_exceeded' (it would take the org's credits below -1,000,000,000 USD) |
--   'unknown_api_key' (api_key_id names no key of the event's organization).
-- usage_duplicates: null, or {k, id, cost, catalog_version, hold_id} of the first event, per duplicate.
-- usage_alerts: null, or {i, balance, threshold} per organization whose balance crossed its
--   low-balance threshold downwards (its balance_alerts row has the organization's alert_id).
-- authorize_outcomes[k]: 'held' | 'replayed' | 'idempotency_key_reused' | 'insufficient_balance' |
--   'spend_limit_reached' (a hard budget would be exceeded) | 'unknown_organization' | 'unknown_api_key'.
-- authorize_details: null, or {k, available} per insufficient_balance (what was spendable),
--   {k, budget_id, scope, target, limit, spent, held, period_start} per spend_limit_reached, and
--   {k, id, amount, status, expires_at, created_at, catalog_version} per replay, with the
--   hold's status as it is now ('active', 'settled' or 'expired').
-- expired_holds: how many holds phase 2 expired.
--
-- With no requests at all it is the expired-hold sweeper for the organizations given.

drop function if exists metering_batch;
drop function if exists metering_lock_orgs;
drop function if exists metering_release_expired; -- the earlier name of metering_expire_holds
drop function if exists metering_expire_holds;
drop function if exists metering_settle;
drop function if exists metering_budget_spend;
drop function if exists metering_decide;
drop function if exists metering_post;
drop type if exists metering_org cascade;
drop type if exists metering_usage cascade;
drop type if exists metering_authorization cascade;

-- Per organization: its id and the ids of what the batch may write for it (null: not needed).
create type metering_org as (org_id text, usage_txn text, alert_id text);

create type metering_usage as (
  org int,              -- index into p_orgs
  id text,              -- id of the usage row, if the event is recorded
  key text,             -- idempotency key (per organization)
  prev int,             -- index of the previous event of this batch with the same org and key
  occurred_at timestamptz,
  product text,
  model text,           -- '' without a model
  quantities jsonb,
  cost bigint,          -- priced by the catalog version in force at occurred_at
  catalog_version text,
  hold_id text,         -- null: no hold
  hold_first int,       -- index of the first event of this batch naming the same hold
  api_key_id text,      -- the org's key the gateway served, or null (must be a key of org)
  project text          -- the customer's project label, or null
);

create type metering_authorization as (
  org int,              -- index into p_orgs
  hold_id text,         -- id of the hold, if it is granted
  amount bigint,
  key text,             -- idempotency key, or null
  prev int,             -- index of the previous authorization of this batch with the same org and key
  product text,
  model text,
  estimate jsonb,
  catalog_version text,
  ttl_seconds int,
  api_key_id text,      -- as in metering_usage
  project text,
  recheck boolean       -- without a key, written again after a failed call whose answer may have
                        -- been lost after its commit: a hold with hold_id answers it (phase 4)
);

-- 1. Locks the organizations' credits accounts and reads what a money decision needs, per
-- element of p_orgs (null credits = no such organization): `held`, what live holds reserve on
-- the account, and `credits`, the rest of its balance. The lock is one statement ordered
-- by account id, as lockOrgs() in src/billing/org-locks.ts takes it, so that every path locks
-- organizations in the same order and no two batches can deadlock. Every read is a primary-key
-- or index probe per organization (a lateral subquery with a limit is never flattened into a
-- join, so no statistics can turn it into a scan of a whole table). `expiring`: the
-- organization has grants with an expiry not posted yet (usually none). `budgeted`: it has live
-- budgets (phase 3b keeps their counters); `hard`: some of them are hard (phase 4 checks them);
-- `scoped`: some are for a project or a key (phase 3b then reads the key and project of the holds
-- that usage settles). Organizations without budgets pay one index probe of budgets here and
-- nothing more. `org_budget`, `org_budget_limit`: the live org-scope budget, if any; an
-- organization without project or key budgets has that one budget alone, so phases 3b and 4 take
-- it from here instead of probing budgets again. `auto_topup`: its auto top-up is on (only then
-- does metering_batch look for a crossing of its threshold).
create function metering_lock_orgs(
  p_orgs text[],
  out credits bigint[], out held bigint[], out threshold bigint[], out expiring boolean[],
  out budgeted boolean[], out hard boolean[], out scoped boolean[], out org_budget text[], out org_budget_limit bigint[],
  out auto_topup boolean[]
) language plpgsql
-- Generic plans: these statements are index probes whatever the arguments, and planning them
-- afresh on every call (custom plans) cost more than running them.
set plan_cache_mode = force_generic_plan
as $$
begin
  perform 1 from ledger_accounts
  where id = any (array(select 'org:' || o || ':credits' from unnest(p_orgs) o))
  order by id
  for update;
  select array_agg(c.balance - c.held order by o.i), array_agg(c.held order by o.i), array_agg(t.low_balance_threshold order by o.i),
         array_agg(g.expiring order by o.i), array_agg(b.budgeted order by o.i), array_agg(b.hard order by o.i),
         array_agg(b.scoped order by o.i), array_agg(b.org_budget order by o.i), array_agg(b.org_limit order by o.i),
         array_agg(tu.enabled order by o.i)
    into credits, held, threshold, expiring, budgeted, hard, scoped, org_budget, org_budget_limit, auto_topup
  from unnest(p_orgs) with ordinality o(org_id, i)
  left join lateral (select a.balance, a.held from ledger_accounts a where a.id = 'org:' || o.org_id || ':credits' limit 1) c on true
  left join lateral (select x.low_balance_threshold from organizations x where x.id = o.org_id limit 1) t on true
  left join lateral (select exists (select 1 from credit_grants g where g.org_id = o.org_id and g.expires_at is not null and g.expired_at is null) as expiring) g on true
  left join lateral (select count(*) > 0 as budgeted, coalesce(bool_or(b.enforcement = 'hard'), false) as hard,
                            coalesce(bool_or(b.scope <> 'org'), false) as scoped,
                            max(b.id) filter (where b.scope = 'org') as org_budget,
                            max(b.limit_amount) filter (where b.scope = 'org') as org_limit
                     from budgets b where b.org_id = o.org_id and b.deleted_at is null) b on true
  left join lateral (select exists (select 1 from auto_topup_settings s where s.org_id = o.org_id and s.enabled) as enabled) tu on true;
end $$;

-- 2. Closes as 'expired' the active holds past their expiry: all those of the organizations
-- with p_sweep[i], and those named in p_named. Returns per organization the amount no longer
-- reserved and the number of holds (nothing to post: the holds' trigger takes them off `held`).
create function metering_expire_holds(
  p_now timestamptz, p_orgs metering_org[], p_sweep boolean[], p_named text[],
  out expired bigint[], out expired_n int[]
) language plpgsql
set plan_cache_mode = force_generic_plan
as $$
declare
  m int := coalesce(array_length(p_orgs, 1), 0);
  v_due text[];
  r record;
begin
  expired := array_fill(0::bigint, array[m]);
  expired_n := array_fill(0, array[m]);
  -- Every read is a probe per organization or per hold (`offset 0` keeps the sweep's subquery
  -- from being flattened, `= any` reaches holds by primary key): plans cached while holds was
  -- small otherwise joined against every organization's active holds, read whole on every batch.
  -- A named hold is probed by its id alone: `status || ''` (see metering_settle's update of holds)
  -- keeps the partial indexes over active holds out of its plan. A plan made right after a vacuum,
  -- when they are empty, matched expires_at in one of them and filtered on id, reading the whole
  -- of holds_active_org on every probe (test/metering/hold-probe-plan.test.ts).
  select array_agg(d.id) into v_due from (
    select h.id from generate_subscripts(p_orgs, 1) i
    cross join lateral (select h.id from holds h where h.org_id = (p_orgs[i]).org_id and h.status = 'active' and h.expires_at <= p_now offset 0) h
    where p_sweep[i]
    union
    select h.id from unnest(p_named) n(id)
    cross join lateral (select h.id from holds h where h.id = n.id and h.status || '' = 'active' and h.expires_at <= p_now limit 1) h
  ) d;
  -- Usually none is due: then no UPDATE at all, as one of no rows still runs the holds' statement
  -- trigger (holds.sql).
  if v_due is null then
    return;
  end if;
  for r in
    with orgs as (
      select i, (p_orgs[i]).org_id from generate_subscripts(p_orgs, 1) i
    ), closed as (
      -- Only holds of the batch's organizations, which it has locked (an event may name another's).
      update holds h set status = 'expired', closed_at = p_now
      from orgs o
      -- `status || ''`: see metering_settle's update of holds.
      where h.id = any (v_due) and h.status || '' = 'active' and o.org_id = h.org_id
      returning o.i, h.amount
    )
    select c.i, sum(c.amount)::bigint as total, count(*)::int as n from closed c group by c.i
  loop
    expired[r.i] := r.total;
    expired_n[r.i] := r.n;
  end loop;
end $$;

-- 3. Usage events, in order. Each key is recorded once per organization: a repeated key with
-- the same payload answers with the first event, with another payload it is refused. An event
-- naming an active hold of its organization settles it (the hold's amount is no longer
-- reserved); its cost is charged in full, so credits may go negative by the overrun of
-- authorized requests. Usage is charged to expiring grants first (see money_rules.sql).
-- Writes the holds it settles and the grants it consumes; returns the per-organization sums.
create function metering_settle(
  p_now timestamptz, p_orgs metering_org[], p_usage metering_usage[], p_credits bigint[], p_expiring boolean[],
  out outcomes text[], out cost bigint[], out settled bigint[], out events int[], out duplicates jsonb
) language plpgsql
set plan_cache_mode = force_generic_plan
as $$
#variable_conflict use_column
declare
  m int := coalesce(array_length(p_orgs, 1), 0);
  nu int := coalesce(array_length(p_usage, 1), 0);
  u metering_usage;
  p metering_usage;
  -- per event: the event that answers it (itself once recorded, the first one for a duplicate)
  v_first_id text[] := array_fill(null::text, array[nu]);
  v_first_cost bigint[] := array_fill(null::bigint, array[nu]);
  v_first_version text[] := array_fill(null::text, array[nu]);
  v_first_hold_id text[] := array_fill(null::text, array[nu]);
  v_same boolean[] := array_fill(null::boolean, array[nu]);  -- an earlier event's payload equals this one's
  v_first_k int[] := array_fill(null::int, array[nu]);  -- the event of this batch that recorded the key (null: none)
  -- per event naming a hold: that hold as it is after phase 2
  v_hold_org text[];
  v_hold_status text[];
  v_hold_amount bigint[];
  v_hold_created timestamptz[];
  v_key_org text[];  -- per event: the organization of the api key it names (null: none, or no such key)
  v_known_k int[];  -- the events whose key is recorded already, and that event's id and month
  v_known_id text[];
  v_known_at timestamptz[];
  v_settle_ids text[] := '{}';
  v_settle_org int[] := '{}';
  v_hold_charges bigint[] := '{}';      -- usage settling a hold, charged to the grants live when it was taken
  v_hold_charge_at timestamptz[] := '{}';
  v_hold_charge_org int[] := '{}';
  v_plain bigint[] := array_fill(0::bigint, array[m]);  -- other usage, charged to the grants live now
  v_credits bigint[] := p_credits;  -- the credits account as each event leaves it
  -- Usage is charged without a balance check, but never past this debt: the ledger's bigint
  -- must hold any org's balance, and a gateway reporting a billion dollars of usage is broken.
  c_max_debt constant bigint := 1000000000000000000;  -- 1,000,000,000 USD in nano-USD
  n_dup int := 0;
  r record;
  k int;
  i int;
begin
  outcomes := array_fill(null::text, array[nu]);
  cost := array_fill(0::bigint, array[m]);
  settled := array_fill(0::bigint, array[m]);
  events := array_fill(0, array[m]);

  -- Events already recorded under these keys, read after the organization locks, so a racing
  -- batch with the same key has committed by now: a probe of usage_event_keys (the key, unique
  -- across every month's partition) per event, then, for the keys found (a retry; usually none),
  -- a probe of the one partition of usage_events each names. Two statements, so that a batch of
  -- new keys never opens usage_events: a plan over it starts by locking and opening every month's
  -- partition and index, pruned only as each row's month is known.
  select array_agg(x.k), array_agg(uk.event_id), array_agg(uk.occurred_at)
    into v_known_k, v_known_id, v_known_at
  from unnest(p_usage) with ordinality x(org, id, key, prev, occurred_at, product, model, quantities, cost, catalog_version, hold_id, hold_first, api_key_id, project, k)
  cross join lateral (
    select uk.event_id, uk.occurred_at from usage_event_keys uk
    where uk.org_id = (p_orgs[x.org]).org_id and uk.idempotency_key = x.key
    limit 1) uk;
  if v_known_k is not null then
    for r in
      select f.k, e.id, e.cost, e.catalog_version, e.hold_id,
             e.occurred_at = x.occurred_at and e.product = x.product and e.model = x.model and e.quantities = x.quantities
               and e.hold_id is not distinct from x.hold_id
               and e.api_key_id is not distinct from x.api_key_id and e.project is not distinct from x.project as same
      from unnest(v_known_k, v_known_id, v_known_at) f(k, id, at)
      cross join lateral (select (p_usage[f.k]).*) x
      cross join lateral (select e.* from usage_events e where e.occurred_at = f.at and e.id = f.id limit 1) e
    loop
      v_first_id[r.k] := r.id;
      v_first_cost[r.k] := r.cost;
      v_first_version[r.k] := r.catalog_version;
      v_first_hold_id[r.k] := r.hold_id;
      v_same[r.k] := r.same;
    end loop;
  end if;

  -- The holds named, as phase 2 left them (primary-key probes). A hold changes state only under
  -- its organization's lock, which this batch holds for every hold it may settle (an event
  -- naming another organization's hold is refused).
  select array_agg(h.org_id order by x.k), array_agg(h.status order by x.k), array_agg(h.amount order by x.k), array_agg(h.created_at order by x.k),
         array_agg(ak.org_id order by x.k)
    into v_hold_org, v_hold_status, v_hold_amount, v_hold_created, v_key_org
  from unnest(p_usage) with ordinality x(org, id, key, prev, occurred_at, product, model, quantities, cost, catalog_version, hold_id, hold_first, api_key_id, project, k)
  left join lateral (select h.org_id, h.status, h.amount, h.created_at from holds h where h.id = x.hold_id limit 1) h on true
  -- The key an event names: a primary-key probe, only for events that name one.
  left join lateral (select a.org_id from api_keys a where a.id = x.api_key_id limit 1) ak on true;

  for k in 1..nu loop
    u := p_usage[k];
    i := u.org;
    if v_credits[i] is null then
      outcomes[k] := 'unknown_organization';
      continue;
    end if;
    if v_first_id[k] is null and u.prev is not null and v_first_id[u.prev] is not null then
      -- The same key earlier in this batch, recorded or itself a duplicate: this payload is
      -- compared with the event recorded (not with the previous use, which may itself have been
      -- refused as idempotency_key_reused).
      v_first_k[k] := v_first_k[u.prev];
      p := p_usage[coalesce(v_first_k[k], u.prev)];
      v_first_id[k] := v_first_id[u.prev];
      v_first_cost[k] := v_first_cost[u.prev];
      v_first_version[k] := v_first_version[u.prev];
      v_first_hold_id[k] := v_first_hold_id[u.prev];
      v_same[k] := p.occurred_at = u.occurred_at and p.product = u.product and p.model = u.model and p.quantities = u.quantities
                   and p.hold_id is not distinct from u.hold_id
                   and p.api_key_id is not distinct from u.api_key_id and p.project is not distinct from u.project;
    end if;
    if v_first_id[k] is not null then
      if v_same[k] then
        outcomes[k] := 'duplicate';
        n_dup := n_dup + 1;
      else
        outcomes[k] := 'idempotency_key_reused';
      end if;
      continue;
    end if;
    outcomes[k] := 'recorded';
    if u.api_key_id is not null and v_key_org[k] is distinct from (p_orgs[i]).org_id then
      outcomes[k] := 'unknown_api_key';
      continue;
    end if;
    if u.hold_id is not null and (v_hold_org[k] is null or v_hold_org[k] <> (p_orgs[i]).org_id) then
      outcomes[k] := 'hold_not_found';
      continue;
    end if;
    if v_credits[i] - u.cost < -c_max_debt then
      outcomes[k] := 'debt_limit_exceeded';
      continue;
    end if;
    v_credits[i] := v_credits[i] - u.cost;
    if u.hold_id is not null then
      if v_hold_status[u.hold_first] = 'active' then
        outcomes[k] := 'settled';
        v_hold_status[u.hold_first] := 'settled'; -- a second event naming this hold must not settle it again
        v_settle_ids := array_append(v_settle_ids, u.hold_id);
        v_settle_org := array_append(v_settle_org, i);
        settled[i] := settled[i] + v_hold_amount[k];
        v_credits[i] := v_credits[i] + v_hold_amount[k];
        if p_expiring[i] then
          v_hold_charges := array_append(v_hold_charges, u.cost);
          v_hold_charge_at := array_append(v_hold_charge_at, v_hold_created[k]);
          v_hold_charge_org := array_append(v_hold_charge_org, i);
        end if;
      else
        outcomes[k] := 'already_closed';
        v_plain[i] := v_plain[i] + u.cost;
      end if;
    else
      v_plain[i] := v_plain[i] + u.cost;
    end if;
    cost[i] := cost[i] + u.cost;
    events[i] := events[i] + 1;
    v_first_id[k] := u.id;
    v_first_k[k] := k;
    v_first_cost[k] := u.cost;
    v_first_version[k] := u.catalog_version;
    v_first_hold_id[k] := u.hold_id;
    v_same[k] := true;
  end loop;

  -- The batch's usage transaction (one per distinct usage_txn: metering_post), written here,
  -- before the settles that name it, so that their reference is checked as the statement ends
  -- (holds.sql) instead of a query per hold at commit; phase 5 writes its entries and the list of
  -- its organizations. Only when it moves money: free usage writes none.
  insert into ledger_transactions (id, org_id, kind, idempotency_key, description, metadata, created_at)
  select (p_orgs[i]).usage_txn, null, 'usage', (p_orgs[i]).usage_txn, 'metered usage',
         jsonb_build_object('events', sum(events[i]), 'organizations', count(*)), p_now
  from generate_subscripts(p_orgs, 1) i
  where cost[i] <> 0
  group by (p_orgs[i]).usage_txn
  order by (p_orgs[i]).usage_txn;

  if array_length(v_settle_ids, 1) > 0 then
    -- A settled hold names its organization's usage transaction of this batch, written above only
    -- when it moves money: a hold settled while all of its organization's usage in the batch is
    -- free names none (free usage beside paid usage names the posted one, as its event does).
    update holds h set status = 'settled', closed_at = p_now,
      close_transaction_id = case when cost[x.i] <> 0 then (p_orgs[x.i]).usage_txn end
    from unnest(v_settle_ids, v_settle_org) x(id, i)
    -- `= any`: holds are reached by primary key whatever the plan (joined on x alone, a plan cached
    -- while holds was small read every active hold of every organization). `status || ''`: the
    -- guard stays, but the planner cannot see in it the predicate of the partial indexes over
    -- active holds, so it cannot read one of them whole and filter on id instead, which statistics
    -- taken while few holds were active made it do: a batch read every hold in flight
    -- (test/metering/holds-by-key.test.ts).
    where h.id = any (v_settle_ids) and h.id = x.id and h.status || '' = 'active';
  end if;

  -- Expiring grants are consumed first (money_rules.sql): usage that settles a hold from the
  -- grants live when the hold was taken, other usage from those live now.
  for k in 1..coalesce(array_length(v_hold_charges, 1), 0) loop
    i := v_hold_charge_org[k];
    v_plain[i] := v_plain[i] + consume_expiring_grants((p_orgs[i]).org_id, v_hold_charges[k], v_hold_charge_at[k]);
  end loop;
  for i in 1..m loop
    continue when not coalesce(p_expiring[i], false) or v_plain[i] <= 0;
    perform consume_expiring_grants((p_orgs[i]).org_id, v_plain[i], p_now);
  end loop;

  if n_dup > 0 then
    select jsonb_agg(jsonb_build_object('k', k, 'id', v_first_id[k], 'cost', v_first_cost[k]::text,
                                        'catalog_version', v_first_version[k], 'hold_id', v_first_hold_id[k]))
      into duplicates
    from generate_subscripts(outcomes, 1) k
    where outcomes[k] = 'duplicate';
  end if;
end $$;

-- 3b. Budgets (migration 0031; budgets.sql has the period rule and the threshold events): adds
-- the cost of the usage events this batch records to the period counters of the budgets they fall under (the org's; the event's project's; the event's key's,
-- or those of the hold it settles when it names none),
-- for the organizations with budgets (p_budgeted, read in phase 1) only. One statement: the events
-- are summed per (org, project, key) first, so each group probes the org's budgets once. A
-- counter that reaches a threshold writes its event in the same transaction.
create function metering_budget_spend(
  p_now timestamptz, p_orgs metering_org[], p_budgeted boolean[], p_scoped boolean[], p_usage metering_usage[],
  p_outcomes text[], p_org_budget text[], p_org_limit bigint[]
) returns void language plpgsql
set plan_cache_mode = force_generic_plan
as $$
declare
  v_period timestamptz := budget_period_start(p_now);
  r record;
begin
  for r in
    with used as (
      -- Usage that settles a hold and names no key (project) counts under the hold's: the hold
      -- was authorized against that key's budget, and its usage must fill it (else a gateway
      -- that leaves the key off its reports lets the key authorize without end). Only for orgs
      -- with project or key budgets (p_scoped): an org budget counts all usage alike.
      select u.org, coalesce(u.project, h.project) as project, coalesce(u.api_key_id, h.api_key_id) as api_key_id,
             sum(u.cost)::bigint as cost
      from unnest(p_usage) with ordinality u(org, id, key, prev, occurred_at, product, model, quantities, cost, catalog_version, hold_id, hold_first, api_key_id, project, k)
      left join lateral (
        select h.project, h.api_key_id from holds h
        where p_scoped[u.org] and h.id = u.hold_id and (u.project is null or u.api_key_id is null) limit 1
      ) h on true
      where p_budgeted[u.org] and p_outcomes[u.k] in ('recorded', 'settled', 'already_closed')
      group by 1, 2, 3
      having sum(u.cost) > 0
    ), spend as (
      select b.id, b.limit_amount, sum(x.cost)::bigint as cost
      from used x
      cross join lateral (
        -- An organization without project or key budgets has one budget, the org's (phase 1).
        select p_org_budget[x.org] as id, p_org_limit[x.org] as limit_amount where not p_scoped[x.org]
        union all
        (select b.id, b.limit_amount from budgets b
         where p_scoped[x.org] and b.org_id = (p_orgs[x.org]).org_id and b.deleted_at is null
           and (b.scope = 'org' or (b.scope = 'project' and b.project = x.project) or (b.scope = 'key' and b.api_key_id = x.api_key_id))
         offset 0) -- a probe per group, never a join of every live budget (see metering_decide)
      ) b
      group by b.id, b.limit_amount
    ), counted as (
      insert into budget_periods as p (budget_id, period_start, spent)
      select s.id, v_period, s.cost from spend s
      on conflict (budget_id, period_start) do update set spent = p.spent + excluded.spent
      returning p.budget_id, p.spent, p.notified_80_at, p.notified_100_at
    )
    select c.budget_id from counted c
    join spend b on b.id = c.budget_id
    where (c.notified_80_at is null and c.spent::numeric * 100 >= b.limit_amount::numeric * 80)
       or (c.notified_100_at is null and c.spent >= b.limit_amount)
  loop
    perform budget_note_thresholds(r.budget_id, v_period, p_now);
  end loop;
end $$;

-- 4. Authorizations, in order, against the balance as phases 2 and 3 left it (p_credits, the
-- credits account). A key seen before (in an earlier batch or earlier in this one) with the same
-- payload answers with that hold as it is now; with another payload it is refused. Otherwise the
-- request is held if it fits in what is spendable: the credits account less what expired,
-- unposted grants take from it (grant_expiry_taken). Reads only; phase 5 writes the holds.
--
-- Hard budgets (p_hard: the organization has some and authorizes in this batch): before the
-- balance, each budget that applies to the request (the org's; the request's project's; the
-- request's key's) must hold it: spent this period + held in its scope + amount <= limit, else
-- 'spend_limit_reached'. `spent` is the period counter as phase 3b left it; `held` is what the
-- org's live holds reserve (p_held, as phases 2 and 3 left it) for the org's budget, the sum of the org's
-- active holds with that project or key for the others, read once per batch; each hold granted
-- here adds to the held of every budget it falls under, so racing requests against a budget
-- covering exactly K requests get exactly K holds.
create function metering_decide(
  p_now timestamptz, p_orgs metering_org[], p_auth metering_authorization[], p_credits bigint[], p_expiring boolean[],
  p_held bigint[] default null, p_hard boolean[] default null,
  p_scoped boolean[] default null, p_org_budget text[] default null, p_org_limit bigint[] default null,
  out outcomes text[], out newly_held bigint[], out details jsonb
) language plpgsql
set plan_cache_mode = force_generic_plan
as $$
#variable_conflict use_column
declare
  m int := coalesce(array_length(p_orgs, 1), 0);
  na int := coalesce(array_length(p_auth, 1), 0);
  a metering_authorization;
  p metering_authorization;
  v_credits bigint[] := p_credits;
  v_expiry bigint[] := array_fill(0::bigint, array[m]);  -- what expired grants take (grant_expiry_taken)
  v_available bigint[] := array_fill(null::bigint, array[na]);
  v_replay jsonb[] := array_fill(null::jsonb, array[na]);
  v_same boolean[] := array_fill(null::boolean, array[na]);
  v_held_by int[] := array_fill(null::int, array[na]);  -- the request of this batch whose hold answers this one's key
  v_spendable bigint;
  -- the hard budgets of p_hard's organizations, grouped by organization (bu_first[i]..bu_last[i])
  bu_id text[];
  bu_scope text[];
  bu_target text[];
  bu_limit bigint[];
  bu_spent bigint[];
  bu_held bigint[];
  bu_org int[];
  bu_first int[] := array_fill(null::int, array[m]);
  bu_last int[] := array_fill(null::int, array[m]);
  v_over int;
  v_refusal jsonb[] := array_fill(null::jsonb, array[na]);
  v_period timestamptz := budget_period_start(p_now);
  r record;
  j int;
  k int;
  i int;
begin
  outcomes := array_fill(null::text, array[na]);
  newly_held := array_fill(0::bigint, array[m]);
  if true = any(p_hard) then
    select array_agg(t.i order by t.i, t.id), array_agg(t.id order by t.i, t.id), array_agg(t.scope order by t.i, t.id),
           array_agg(t.target order by t.i, t.id), array_agg(t.limit_amount order by t.i, t.id),
           array_agg(t.spent order by t.i, t.id), array_agg(t.held order by t.i, t.id)
      into bu_org, bu_id, bu_scope, bu_target, bu_limit, bu_spent, bu_held
    from (
      -- Every read here is a probe per organization or budget: `offset 0` and the scalar
      -- subqueries keep the planner from joining whole tables into each batch (pulled up, the
      -- generic plan read every live budget, or every period row of the month, per batch).
      select i, b.id, b.scope, coalesce(b.project, b.api_key_id) as target, b.limit_amount,
             coalesce((select p.spent from budget_periods p where p.budget_id = b.id and p.period_start = v_period), 0) as spent,
             case b.scope when 'org' then p_held[i]
               else (select coalesce(sum(h.amount), 0)::bigint from holds h
                     where h.org_id = b.org_id and h.status = 'active'
                       and (h.api_key_id = b.api_key_id or h.project = b.project))
             end as held
      from generate_subscripts(p_orgs, 1) i
      cross join lateral (
        -- An organization without project or key budgets: its one (hard) budget, read in phase 1.
        select p_org_budget[i] as id, 'org'::text as scope, null::text as project, null::text as api_key_id,
               p_org_limit[i] as limit_amount, (p_orgs[i]).org_id as org_id
        where not coalesce(p_scoped[i], true)
        union all
        (select b.id, b.scope, b.project, b.api_key_id, b.limit_amount, b.org_id from budgets b
         where coalesce(p_scoped[i], true) and b.org_id = (p_orgs[i]).org_id and b.deleted_at is null and b.enforcement = 'hard'
         offset 0)
      ) b
      where p_hard[i]
    ) t;
    for j in 1..coalesce(array_length(bu_id, 1), 0) loop
      bu_first[bu_org[j]] := coalesce(bu_first[bu_org[j]], j);
      bu_last[bu_org[j]] := j;
    end loop;
  end if;
  for i in 1..m loop
    continue when not coalesce(p_expiring[i], false);
    v_expiry[i] := grant_expiry_taken((p_orgs[i]).org_id, p_now);
  end loop;

  -- Holds already granted under these keys (index probes on the unique key), as they are now;
  -- and for a request without a key that is written again (`recheck`), the hold its first
  -- attempt may have committed under its id (a probe of the primary key), which answers it as
  -- a replay: one request, one hold, whichever attempt's answer reached the caller.
  for r in
    select x.k, h.id, h.amount, h.status, h.expires_at, h.created_at, h.catalog_version,
           h.product = x.product and h.model = x.model and h.estimate = x.estimate
             and h.api_key_id is not distinct from x.api_key_id and h.project is not distinct from x.project
             and h.expires_at = h.created_at + make_interval(secs => x.ttl_seconds) as same
    from unnest(p_auth) with ordinality x(org, hold_id, amount, key, prev, product, model, estimate, catalog_version, ttl_seconds, api_key_id, project, recheck, k)
    cross join lateral (
      select * from holds h where x.key is not null and h.org_id = (p_orgs[x.org]).org_id and h.idempotency_key = x.key
      union all
      select * from holds h where x.key is null and x.recheck and h.id = x.hold_id and h.org_id = (p_orgs[x.org]).org_id
      limit 1) h
    where x.key is not null or x.recheck
  loop
    v_replay[r.k] := jsonb_build_object('id', r.id, 'amount', r.amount::text, 'status', r.status, 'expires_at', r.expires_at,
                                        'created_at', r.created_at, 'catalog_version', r.catalog_version);
    v_same[r.k] := r.same;
  end loop;

  for k in 1..na loop
    a := p_auth[k];
    i := a.org;
    if v_credits[i] is null then
      outcomes[k] := 'unknown_organization';
      continue;
    end if;
    if v_replay[k] is null and a.prev is not null and v_held_by[a.prev] is not null then
      -- The same key was held earlier in this batch: that hold answers this one too, and this
      -- payload is compared with the one held (not with the previous use, which may itself have
      -- been refused as idempotency_key_reused).
      v_held_by[k] := v_held_by[a.prev];
      p := p_auth[v_held_by[k]];
      v_same[k] := p.product = a.product and p.model = a.model and p.estimate = a.estimate and p.ttl_seconds = a.ttl_seconds
                   and p.api_key_id is not distinct from a.api_key_id and p.project is not distinct from a.project;
      v_replay[k] := jsonb_build_object('id', p.hold_id, 'amount', p.amount::text, 'status', 'active',
        'expires_at', p_now + make_interval(secs => p.ttl_seconds), 'created_at', p_now, 'catalog_version', p.catalog_version);
    end if;
    if v_replay[k] is not null then
      outcomes[k] := case when v_same[k] then 'replayed' else 'idempotency_key_reused' end;
      continue;
    end if;
    if a.api_key_id is not null
       and (select ak.org_id from api_keys ak where ak.id = a.api_key_id) is distinct from (p_orgs[i]).org_id then
      outcomes[k] := 'unknown_api_key';
      continue;
    end if;
    v_over := null;
    for j in coalesce(bu_first[i], 1)..coalesce(bu_last[i], 0) loop
      continue when bu_scope[j] = 'key' and bu_target[j] is distinct from a.api_key_id;
      continue when bu_scope[j] = 'project' and bu_target[j] is distinct from a.project;
      if bu_spent[j] + bu_held[j] + a.amount > bu_limit[j] then
        v_over := j;
        exit;
      end if;
    end loop;
    if v_over is not null then
      outcomes[k] := 'spend_limit_reached';
      v_refusal[k] := jsonb_build_object('k', k, 'budget_id', bu_id[v_over], 'scope', bu_scope[v_over],
        'target', case bu_scope[v_over] when 'org' then (p_orgs[i]).org_id else bu_target[v_over] end,
        'limit', bu_limit[v_over]::text, 'spent', bu_spent[v_over]::text, 'held', bu_held[v_over]::text,
        'period_start', budget_period_start(p_now));
      continue;
    end if;
    v_spendable := spendable_credits(v_credits[i], v_expiry[i]);
    if a.amount > v_spendable then
      outcomes[k] := 'insufficient_balance';
      v_available[k] := v_spendable;
    else
      outcomes[k] := 'held';
      v_held_by[k] := k;
      v_credits[i] := v_credits[i] - a.amount;
      newly_held[i] := newly_held[i] + a.amount;
      for j in coalesce(bu_first[i], 1)..coalesce(bu_last[i], 0) loop
        continue when bu_scope[j] = 'key' and bu_target[j] is distinct from a.api_key_id;
        continue when bu_scope[j] = 'project' and bu_target[j] is distinct from a.project;
        bu_held[j] := bu_held[j] + a.amount;
      end loop;
    end if;
  end loop;

  select jsonb_agg(case outcomes[k]
           when 'insufficient_balance' then jsonb_build_object('k', k, 'available', v_available[k]::text)
           when 'spend_limit_reached' then v_refusal[k]
           else v_replay[k] || jsonb_build_object('k', k)
         end)
    into details
  from generate_subscripts(outcomes, 1) k
  where outcomes[k] in ('insufficient_balance', 'replayed', 'spend_limit_reached');
end $$;

-- 5. Writes what phases 2–4 decided: the ledger first (the list of the usage transaction's
-- organizations, then its entries in one statement, so the ledger triggers run once), then the
-- usage rows, holds and alerts. The only movement is usage's cost, from each org's credits to
-- revenue: holds are reservations (the holds triggers keep `held` as the holds below are inserted
-- and phases 2–3 closed them).
--
-- The batch's usage is one 'usage' transaction for all its organizations (the API names the same
-- usage_txn for each; a caller naming one per organization gets one transaction each, as before
-- migration 0040): an entry per organization's credits account and one to revenue for their sum.
-- It names no organization; ledger_transaction_orgs lists the ones it touches, each with its own
-- event count as the metadata its transaction list shows. Revenue is one entry per transaction
-- unless its organizations' costs sum past a bigint (the API's batches cannot: 1,000 requests of
-- at most 1,000,000 USD, src/billing/metering.ts; a tool's recordUsageBatch can), then one per
-- organization.
create function metering_post(
  p_now timestamptz, p_orgs metering_org[],
  p_usage metering_usage[], p_usage_outcomes text[], p_auth metering_authorization[], p_auth_outcomes text[],
  p_cost bigint[], p_events int[], p_alerts jsonb
) returns void language plpgsql
set plan_cache_mode = force_generic_plan
as $$
begin
  -- The transactions themselves were written in phase 3 (metering_settle), before the holds they
  -- close: read back by primary key, once each. A batch without a cost (authorizations only, or
  -- usage that cost nothing) posts nothing, and skips the insert: one of no rows still starts it.
  if 0 <> any (p_cost) then
    insert into ledger_transaction_orgs (org_id, seq, transaction_id, created_at, metadata)
    select (p_orgs[i]).org_id, t.seq, t.id, p_now, jsonb_build_object('events', p_events[i])
    from generate_subscripts(p_orgs, 1) i
    join (select t.id, t.seq from ledger_transactions t
          where t.id = any (array(select distinct (p_orgs[j]).usage_txn from generate_subscripts(p_orgs, 1) j where p_cost[j] <> 0))) t
      on t.id = (p_orgs[i]).usage_txn
    where p_cost[i] <> 0;
    if found then
      insert into ledger_entries (transaction_id, account_id, amount, created_at)
      select (p_orgs[i]).usage_txn, 'org:' || (p_orgs[i]).org_id || ':credits', -p_cost[i], p_now
      from generate_subscripts(p_orgs, 1) i
      where p_cost[i] <> 0
      union all
      select c.txn, 'system:revenue', sum(c.cost)::bigint, p_now
      from (
        select (p_orgs[i]).usage_txn as txn, i, p_cost[i] as cost,
               sum(p_cost[i]::numeric) over (partition by (p_orgs[i]).usage_txn) > 9223372036854775807 as too_big
        from generate_subscripts(p_orgs, 1) i
        where p_cost[i] <> 0
      ) c
      group by c.txn, case when c.too_big then c.i end;
    end if;
  end if;

  -- Each insert only when it has rows: one of no rows still runs the table's statement triggers.
  if p_usage_outcomes && array['recorded', 'settled', 'already_closed'] then
    insert into usage_events (id, org_id, idempotency_key, occurred_at, product, model, quantities, cost, catalog_version, hold_id, api_key_id, project, transaction_id, recorded_at)
    select u.id, (p_orgs[u.org]).org_id, u.key, u.occurred_at, u.product, u.model, u.quantities, u.cost, u.catalog_version, u.hold_id, u.api_key_id, u.project,
           case when p_cost[u.org] <> 0 then (p_orgs[u.org]).usage_txn end, p_now
    from unnest(p_usage) with ordinality u(org, id, key, prev, occurred_at, product, model, quantities, cost, catalog_version, hold_id, hold_first, api_key_id, project, k)
    where p_usage_outcomes[u.k] in ('recorded', 'settled', 'already_closed');
  end if;

  if 'held' = any (p_auth_outcomes) then
    insert into holds (id, org_id, amount, status, idempotency_key, product, model, estimate, catalog_version, api_key_id, project, expires_at, created_at, transaction_id)
    select a.hold_id, (p_orgs[a.org]).org_id, a.amount, 'active', a.key, a.product, a.model, a.estimate, a.catalog_version, a.api_key_id, a.project,
           p_now + make_interval(secs => a.ttl_seconds), p_now, null
    from unnest(p_auth) with ordinality a(org, hold_id, amount, key, prev, product, model, estimate, catalog_version, ttl_seconds, api_key_id, project, recheck, k)
    where p_auth_outcomes[a.k] = 'held';
  end if;

  if p_alerts is not null then
    insert into balance_alerts (id, org_id, balance, threshold, transaction_id, created_at)
    select (p_orgs[(a->>'i')::int]).alert_id, (p_orgs[(a->>'i')::int]).org_id, (a->>'balance')::bigint, (a->>'threshold')::bigint,
           (p_orgs[(a->>'i')::int]).usage_txn, p_now
    from jsonb_array_elements(p_alerts) a;
  end if;
end $$;

-- One group commit: the usage events and authorizations that arrived together, decided and
-- written as one transaction (see the head of this file).
create function metering_batch(
  p_now timestamptz, p_orgs jsonb, p_usage jsonb, p_authorizations jsonb,
  out usage_outcomes text[], out usage_duplicates jsonb, out usage_alerts jsonb,
  out authorize_outcomes text[], out authorize_details jsonb, out expired_holds int
) language plpgsql
set plan_cache_mode = force_generic_plan
-- For the whole call (the phases run inside it): its statements are probes that take microseconds.
-- No JIT: a generic plan can be costed past jit_above_cost (the sweep of expired holds, planned over
-- the index of every organization's due holds where one organization holds most of them), and
-- compiling it took 7-11 ms of every call. No sequential scans, as in the ledger's triggers
-- (ledger.sql): a generic plan made while a table was small scans it whole until statistics change;
-- phase 5 read the batch's usage transaction by scanning ledger_transactions, which grows by a row
-- every batch (bench/RESULTS-metering.md, 2026-12-03, fifth machine).
set jit = off
set enable_seqscan = off
as $$
declare
  v_orgs metering_org[];
  v_usage metering_usage[] := '{}';
  v_auth metering_authorization[] := '{}';
  m int;
  s record;
  x record;
  st record;
  d record;
  v_sweep boolean[];
  v_hard boolean[];
  v_credits bigint[];
  v_held bigint[];
  v_settled bigint[];
  v_cost bigint[];
  v_events int[];
  v_before bigint;
  v_after bigint;
  i int;
begin
  select array_agg(jsonb_populate_record(null::metering_org, e) order by n) into v_orgs from jsonb_array_elements(p_orgs) with ordinality t(e, n);
  if jsonb_array_length(p_usage) > 0 then
    select array_agg(jsonb_populate_record(null::metering_usage, e) order by n) into v_usage from jsonb_array_elements(p_usage) with ordinality t(e, n);
  end if;
  if jsonb_array_length(p_authorizations) > 0 then
    select array_agg(jsonb_populate_record(null::metering_authorization, e) order by n) into v_auth from jsonb_array_elements(p_authorizations) with ordinality t(e, n);
  end if;
  m := coalesce(array_length(v_orgs, 1), 0);

  -- 1.
  select * into s from metering_lock_orgs(array(select o.org_id from unnest(v_orgs) o));
  v_credits := s.credits;
  v_held := s.held;

  -- 2. Every authorizing organization (or, for the sweeper, every one) and every named hold.
  v_sweep := array_fill(cardinality(v_usage) = 0 and cardinality(v_auth) = 0, array[m]);
  for i in 1..cardinality(v_auth) loop
    v_sweep[(v_auth[i]).org] := true;
  end loop;
  select * into x from metering_expire_holds(p_now, v_orgs, v_sweep, array(select u.hold_id from unnest(v_usage) u where u.hold_id is not null));
  expired_holds := 0;
  for i in 1..m loop
    v_credits[i] := v_credits[i] + x.expired[i];
    v_held[i] := v_held[i] - x.expired[i];
    expired_holds := expired_holds + x.expired_n[i];
  end loop;

  -- 3.
  v_settled := array_fill(0::bigint, array[m]);
  v_cost := array_fill(0::bigint, array[m]);
  v_events := array_fill(0, array[m]);
  if cardinality(v_usage) > 0 then
    select * into st from metering_settle(p_now, v_orgs, v_usage, v_credits, s.expiring);
    usage_outcomes := st.outcomes;
    usage_duplicates := st.duplicates;
    v_settled := st.settled;
    v_cost := st.cost;
    v_events := st.events;
    -- 3b. Only when an organization with budgets recorded usage.
    for i in 1..m loop
      if s.budgeted[i] and v_events[i] > 0 then
        perform metering_budget_spend(p_now, v_orgs, s.budgeted, s.scoped, v_usage, usage_outcomes, s.org_budget, s.org_budget_limit);
        exit;
      end if;
    end loop;
    for i in 1..m loop
      v_credits[i] := v_credits[i] + v_settled[i] - v_cost[i];
      v_held[i] := v_held[i] - v_settled[i];
      -- A downward crossing of the low-balance threshold, judged on the balance (the credits
      -- account, credits + held): every debit path judges that one (src/billing/low-balance.ts).
      v_before := s.credits[i] + s.held[i];
      v_after := v_credits[i] + v_held[i];
      if v_events[i] > 0 and v_cost[i] <> 0 and low_balance_crossed(v_before, v_after, s.threshold[i]) then
        usage_alerts := coalesce(usage_alerts, '[]'::jsonb)
          || jsonb_build_object('i', i, 'balance', v_after::text, 'threshold', s.threshold[i]::text);
      end if;
    end loop;
  end if;

  -- 4.
  if cardinality(v_auth) > 0 then
    -- Hard budgets are checked for the organizations that have some and authorize (v_sweep).
    if true = any(s.hard) then
      v_hard := array_fill(false, array[m]);
      for i in 1..m loop
        v_hard[i] := s.hard[i] and v_sweep[i];
      end loop;
    end if;
    select * into d from metering_decide(p_now, v_orgs, v_auth, v_credits, s.expiring, v_held, v_hard,
                                         s.scoped, s.org_budget, s.org_budget_limit);
    authorize_outcomes := d.outcomes;
    authorize_details := d.details;
  end if;

  -- 5.
  perform metering_post(p_now, v_orgs, v_usage, usage_outcomes, v_auth, authorize_outcomes, v_cost, v_events, usage_alerts);

  -- The same downward crossing against the org's auto top-up threshold, if it has one on
  -- (auto_topup.sql): after phase 5, as the crossing names the usage transaction. Only for the
  -- organizations phase 1 found with auto top-up on: most have none, and a call per organization
  -- was 6 % of an ingest batch's time.
  for i in 1..m loop
    if v_events[i] > 0 and v_cost[i] > 0 and s.auto_topup[i] then
      perform auto_topup_note_crossing((v_orgs[i]).org_id, s.credits[i] + s.held[i], v_credits[i] + v_held[i], (v_orgs[i]).usage_txn, p_now);
    end if;
  end loop;
end $$;
