-- Low-balance crossings are judged on the ledger's balance.
--
-- Every debit writes its alert when it takes the org's balance from at or above its threshold to
-- below it (usage in metering_batch; refunds, disputes, HUSD reversals, cycle close and grant
-- expiry in src/billing/low-balance.ts). Usage used to judge the balance the org is shown (credits
-- less grants that have expired but whose expiry the worker has not posted yet, plus held) and
-- the expiry posting the ledger's: between a grant's expiry and its posting (seconds, and every
-- cycle boundary for a plan's included credits) the two disagree, and a debit in that window could
-- raise a second alert for one drop, or none at all. The ledger's balance (credits + held as
-- posted) changes only by transactions, each under the organization's lock, so each of its
-- crossings belongs to exactly one transaction: every path now judges that one. A drop caused by
-- an expiry is told when the expiry is posted.
--
-- metering_batch below is the function of migration 0010 with only v_before and v_after changed.

create or replace function metering_batch(
  p_now timestamptz,
  p_orgs text[],           -- the batch's distinct organizations
  p_usage_txns text[],     -- per organization: ids for its 'usage', 'release' and 'hold' ledger
  p_release_txns text[],   --   transactions and for a low-balance alert, used if needed
  p_hold_txns text[],
  p_alert_ids text[],
  u_org_idx int[],         -- per usage event: its organization, as an index into p_orgs
  u_usage_ids text[],      -- id of the usage row, if the event is recorded
  u_keys text[],
  u_prev int[],            -- index of the previous event of this batch with the same org and key
  u_occurred_at timestamptz[], u_products text[], u_models text[], u_quantities text[], u_costs bigint[], u_versions text[],
  u_hold_ids text[],       -- null: no hold
  u_hold_first int[],      -- index of the first event of this batch naming the same hold
  a_org_idx int[],         -- per authorization: its organization, as an index into p_orgs
  a_hold_ids text[],       -- id of the hold, if it is granted
  a_amounts bigint[],
  a_keys text[],           -- idempotency keys (the whole array is null when no request has one)
  a_prev int[],            -- index of the previous authorization of this batch with the same org and key
  a_products text[], a_models text[], a_estimates text[], a_versions text[], a_expires_at timestamptz[],
  out usage_outcomes text[], out usage_duplicates jsonb, out usage_alerts jsonb,
  out authorize_outcomes text[], out authorize_details jsonb, out released_holds int
) language plpgsql
set plan_cache_mode = force_generic_plan  -- as metering_lock_orgs
as $$
#variable_conflict use_column
-- In the SQL statements below, k and i name the query's own columns (request and organization
-- indexes); in the loops, the variables of the same meaning.
declare
  m int := coalesce(array_length(p_orgs, 1), 0);
  nu int := coalesce(array_length(u_org_idx, 1), 0);
  na int := coalesce(array_length(a_org_idx, 1), 0);
  s record;
  -- per organization
  v_credits bigint[];
  v_held bigint[];
  v_cost bigint[] := array_fill(0::bigint, array[m]);         -- usage charged
  v_settled bigint[] := array_fill(0::bigint, array[m]);      -- holds released by usage
  v_events int[] := array_fill(0, array[m]);
  v_usage_moved boolean[] := array_fill(false, array[m]);     -- its 'usage' transaction has entries
  v_expired bigint[] := array_fill(0::bigint, array[m]);      -- expired holds given back
  v_expired_n int[] := array_fill(0, array[m]);
  v_authorizing boolean[] := array_fill(false, array[m]);
  v_newly_held bigint[] := array_fill(0::bigint, array[m]);
  -- per usage event: the event that answers it (itself once recorded; the first one for a duplicate)
  v_recorded boolean[] := array_fill(false, array[nu]);
  v_first_id text[] := array_fill(null::text, array[nu]);
  v_first_cost bigint[] := array_fill(null::bigint, array[nu]);
  v_first_version text[] := array_fill(null::text, array[nu]);
  v_first_hold_id text[] := array_fill(null::text, array[nu]);
  v_duplicates int := 0;
  -- per usage event naming a hold: that hold's row; its status is kept current at the hold's first event
  v_hold_org text[];
  v_hold_amount bigint[];
  v_hold_status text[];
  v_settle_ids text[] := '{}';     -- holds released by usage, and their organizations
  v_settle_org int[] := '{}';
  v_alert_org int[] := '{}';
  v_alert_balance bigint[] := '{}';
  v_alert_threshold bigint[] := '{}';
  -- per authorization
  v_granted boolean[] := array_fill(false, array[na]);
  v_available bigint[] := array_fill(null::bigint, array[na]);
  v_replay_id text[] := array_fill(null::text, array[na]);
  v_replay_amount bigint[] := array_fill(null::bigint, array[na]);
  v_replay_status text[] := array_fill(null::text, array[na]);
  v_replay_expires_at timestamptz[] := array_fill(null::timestamptz, array[na]);
  v_replay_created_at timestamptz[] := array_fill(null::timestamptz, array[na]);
  v_replay_version text[] := array_fill(null::text, array[na]);
  v_details int := 0;
  v_before bigint;
  v_after bigint;
  v_spendable bigint;
  v_left bigint;
  v_take bigint;
  r record;
  g record;
  k int;
  i int;
  j int;
  f int;
begin
  -- 1. Lock and read.
  select * into s from metering_lock_orgs(p_orgs, p_now);
  v_credits := s.credits;
  v_held := s.held;

  -- 2. Usage events.
  if nu > 0 then
    -- Events already recorded under these keys (index probes on the unique key). They are read
    -- after the organization locks, so a racing batch with the same key has committed by now.
    for r in
      select x.k, u.id, u.cost, u.catalog_version, u.hold_id
      from unnest(u_org_idx, u_keys) with ordinality x(i, key, k)
      cross join lateral (select * from usage_events u where u.org_id = p_orgs[x.i] and u.idempotency_key = x.key limit 1) u
    loop
      v_first_id[r.k] := r.id;
      v_first_cost[r.k] := r.cost;
      v_first_version[r.k] := r.catalog_version;
      v_first_hold_id[r.k] := r.hold_id;
    end loop;

    -- The holds named (primary-key probes). A hold changes state only under its organization's
    -- lock, which this batch holds for every hold it may settle (an event naming another org's
    -- hold is refused), so what is read here stays current until commit.
    select array_agg(h.org_id order by x.k), array_agg(h.amount order by x.k), array_agg(h.status order by x.k)
      into v_hold_org, v_hold_amount, v_hold_status
    from unnest(u_hold_ids) with ordinality x(id, k)
    left join lateral (select h.org_id, h.amount, h.status from holds h where h.id = x.id limit 1) h on true;

    usage_outcomes := array_fill(null::text, array[nu]);
    for k in 1..nu loop
      i := u_org_idx[k];
      j := u_prev[k];
      if v_credits[i] is null then
        usage_outcomes[k] := 'unknown_organization';
        continue;
      end if;
      if v_first_id[k] is not null then
        usage_outcomes[k] := 'duplicate';
        v_duplicates := v_duplicates + 1;
        continue;
      end if;
      if j is not null and v_first_id[j] is not null then
        -- The same key earlier in this batch, recorded or itself a duplicate.
        usage_outcomes[k] := 'duplicate';
        v_duplicates := v_duplicates + 1;
        v_first_id[k] := v_first_id[j];
        v_first_cost[k] := v_first_cost[j];
        v_first_version[k] := v_first_version[j];
        v_first_hold_id[k] := v_first_hold_id[j];
        continue;
      end if;
      usage_outcomes[k] := 'recorded';
      if u_hold_ids[k] is not null then
        f := u_hold_first[k];
        if v_hold_org[k] is null or v_hold_org[k] <> p_orgs[i] then
          usage_outcomes[k] := 'hold_not_found';
          continue;
        elsif v_hold_status[f] = 'active' then
          v_hold_status[f] := 'settled'; -- a second event naming this hold must not release it twice
          usage_outcomes[k] := 'released';
          v_settle_ids := array_append(v_settle_ids, u_hold_ids[k]);
          v_settle_org := array_append(v_settle_org, i);
          v_settled[i] := v_settled[i] + v_hold_amount[k];
          v_credits[i] := v_credits[i] + v_hold_amount[k];
          v_held[i] := v_held[i] - v_hold_amount[k];
        else
          usage_outcomes[k] := 'already_closed';
        end if;
      end if;
      v_recorded[k] := true;
      v_cost[i] := v_cost[i] + u_costs[k];
      v_credits[i] := v_credits[i] - u_costs[k];
      v_events[i] := v_events[i] + 1;
      v_first_id[k] := u_usage_ids[k];
      v_first_cost[k] := u_costs[k];
      v_first_version[k] := u_versions[k];
      v_first_hold_id[k] := u_hold_ids[k];
    end loop;

    for i in 1..m loop
      continue when v_events[i] = 0;
      v_usage_moved[i] := v_settled[i] <> 0 or v_cost[i] <> 0;
      -- Expiring grants are consumed first, soonest expiry first, as consumeExpiringGrants() in
      -- src/billing/grants.ts does for other debits: what expires is what was not used.
      if s.expiring[i] and v_cost[i] > 0 then
        v_left := v_cost[i];
        for g in
          select id, amount - consumed as free from credit_grants
          where org_id = p_orgs[i] and expires_at > p_now and expired_at is null and consumed < amount
          order by expires_at, id for update
        loop
          exit when v_left = 0;
          v_take := least(g.free, v_left);
          update credit_grants set consumed = consumed + v_take where id = g.id;
          v_left := v_left - v_take;
        end loop;
      end if;
      -- The low-balance crossing is judged on the ledger's balance (credits + held as posted): see
      -- the head of migration 0012.
      v_before := s.credits[i] + s.held[i];
      v_after := v_credits[i] + v_held[i];
      if v_usage_moved[i] and v_before >= s.threshold[i] and v_after < s.threshold[i] then
        v_alert_org := array_append(v_alert_org, i);
        v_alert_balance := array_append(v_alert_balance, v_after);
        v_alert_threshold := array_append(v_alert_threshold, s.threshold[i]);
      end if;
    end loop;
  end if;

  -- 3. Authorizations, after the expired holds of their organizations are released. A batch
  -- without any request (the sweeper) sweeps all its organizations.
  released_holds := 0;
  if na > 0 or nu = 0 then
    for k in 1..na loop
      v_authorizing[a_org_idx[k]] := true;
    end loop;
    for r in
      select x.i, e.total, e.holds
      from unnest(p_orgs) with ordinality x(org_id, i)
      cross join lateral (select sum(h.amount)::bigint as total, count(*)::int as holds from holds h
                          where h.org_id = x.org_id and h.status = 'active' and h.expires_at <= p_now) e
      where (na = 0 or v_authorizing[x.i]) and e.holds > 0
    loop
      continue when v_credits[r.i] is null;
      v_expired[r.i] := r.total;
      v_expired_n[r.i] := r.holds;
      v_credits[r.i] := v_credits[r.i] + r.total;
      v_held[r.i] := v_held[r.i] - r.total;
      released_holds := released_holds + r.holds;
    end loop;
  end if;
  if released_holds > 0 then
    update holds h set status = 'expired', closed_at = p_now,
      close_transaction_id = case when v_expired[x.i] <> 0 then p_release_txns[x.i] end
    from unnest(p_orgs) with ordinality x(org_id, i)
    where h.org_id = x.org_id and h.status = 'active' and h.expires_at <= p_now and v_expired_n[x.i] > 0;
  end if;

  if na > 0 then
    -- Holds already granted under these idempotency keys (index probes on the unique key).
    if a_keys is not null then
      for r in
        select x.k, h.id, h.amount, h.status, h.expires_at, h.created_at, h.catalog_version
        from unnest(a_org_idx, a_keys) with ordinality x(i, key, k)
        cross join lateral (select * from holds h where h.org_id = p_orgs[x.i] and h.idempotency_key = x.key limit 1) h
        where x.key is not null
      loop
        v_replay_id[r.k] := r.id;
        v_replay_amount[r.k] := r.amount;
        v_replay_status[r.k] := r.status;
        v_replay_expires_at[r.k] := r.expires_at;
        v_replay_created_at[r.k] := r.created_at;
        v_replay_version[r.k] := r.catalog_version;
      end loop;
    end if;

    authorize_outcomes := array_fill(null::text, array[na]);
    for k in 1..na loop
      i := a_org_idx[k];
      j := a_prev[k];
      if v_credits[i] is null then
        authorize_outcomes[k] := 'unknown_organization';
      elsif v_replay_id[k] is not null then
        authorize_outcomes[k] := 'replayed';
        v_details := v_details + 1;
      elsif j is not null and (v_granted[j] or v_replay_id[j] is not null) then
        -- The same key earlier in this batch: the hold that answered it answers this one too.
        authorize_outcomes[k] := 'replayed';
        v_details := v_details + 1;
        if v_granted[j] then
          v_replay_id[k] := a_hold_ids[j];
          v_replay_amount[k] := a_amounts[j];
          v_replay_status[k] := 'active';
          v_replay_expires_at[k] := a_expires_at[j];
          v_replay_created_at[k] := p_now;
          v_replay_version[k] := a_versions[j];
        else
          v_replay_id[k] := v_replay_id[j];
          v_replay_amount[k] := v_replay_amount[j];
          v_replay_status[k] := v_replay_status[j];
          v_replay_expires_at[k] := v_replay_expires_at[j];
          v_replay_created_at[k] := v_replay_created_at[j];
          v_replay_version[k] := v_replay_version[j];
        end if;
      else
        -- Spendable: credits less expired grants not yet posted; an expiry takes at most what
        -- the org has in credits and live holds together (expireGrants posts by the same rule).
        v_spendable := v_credits[i] - least(s.pending[i], greatest(v_credits[i] + v_held[i] + v_newly_held[i], 0));
        if a_amounts[k] > v_spendable then
          authorize_outcomes[k] := 'insufficient_balance';
          v_available[k] := v_spendable;
          v_details := v_details + 1;
        else
          authorize_outcomes[k] := 'held';
          v_granted[k] := true;
          v_credits[i] := v_credits[i] - a_amounts[k];
          v_newly_held[i] := v_newly_held[i] + a_amounts[k];
        end if;
      end if;
    end loop;
  end if;

  -- 4. Writes. Ledger transactions and their entries first (each in one statement, so the
  -- ledger triggers run once), then the rows that point at them.
  insert into ledger_transactions (id, org_id, kind, idempotency_key, description, metadata, created_at)
  select t.id, p_orgs[i], t.kind, t.id, t.description, t.metadata, p_now
  from generate_subscripts(p_orgs, 1) i
  cross join lateral (values
    (p_usage_txns[i], 'usage', 'metered usage', jsonb_build_object('events', v_events[i]), v_usage_moved[i]),
    (p_release_txns[i], 'release', 'expired holds released', jsonb_build_object('holds', v_expired_n[i]), v_expired[i] <> 0),
    (p_hold_txns[i], 'hold', 'authorization holds', '{}'::jsonb, v_newly_held[i] <> 0)
  ) t(id, kind, description, metadata, wanted)
  where t.wanted;
  if found then
    insert into ledger_entries (transaction_id, account_id, amount)
    select e.transaction_id, e.account_id, e.amount
    from generate_subscripts(p_orgs, 1) i
    cross join lateral (values
      (p_usage_txns[i], 'org:' || p_orgs[i] || ':held', -v_settled[i]),
      (p_usage_txns[i], 'org:' || p_orgs[i] || ':credits', v_settled[i] - v_cost[i]),
      (p_usage_txns[i], 'system:revenue', v_cost[i]),
      (p_release_txns[i], 'org:' || p_orgs[i] || ':held', -v_expired[i]),
      (p_release_txns[i], 'org:' || p_orgs[i] || ':credits', v_expired[i]),
      (p_hold_txns[i], 'org:' || p_orgs[i] || ':credits', -v_newly_held[i]),
      (p_hold_txns[i], 'org:' || p_orgs[i] || ':held', v_newly_held[i])
    ) e(transaction_id, account_id, amount)
    where e.amount <> 0;
  end if;

  if nu > 0 then
    insert into usage_events (id, org_id, idempotency_key, occurred_at, product, model, quantities, cost, catalog_version, hold_id, transaction_id, recorded_at)
    select u_usage_ids[k], p_orgs[u_org_idx[k]], u_keys[k], u_occurred_at[k], u_products[k], u_models[k], u_quantities[k]::jsonb, u_costs[k],
           u_versions[k], u_hold_ids[k], case when v_usage_moved[u_org_idx[k]] then p_usage_txns[u_org_idx[k]] end, p_now
    from generate_subscripts(u_org_idx, 1) k
    where v_recorded[k];

    if array_length(v_settle_ids, 1) > 0 then
      update holds h set status = 'settled', closed_at = p_now,
        close_transaction_id = case when v_usage_moved[x.i] then p_usage_txns[x.i] end
      from unnest(v_settle_ids, v_settle_org) x(id, i)
      where h.id = x.id and h.status = 'active';
    end if;

    if array_length(v_alert_org, 1) > 0 then
      insert into balance_alerts (id, org_id, balance, threshold, transaction_id, created_at)
      select p_alert_ids[a.i], p_orgs[a.i], a.balance, a.threshold, p_usage_txns[a.i], p_now
      from unnest(v_alert_org, v_alert_balance, v_alert_threshold) a(i, balance, threshold);
      select jsonb_agg(jsonb_build_object('i', a.i, 'balance', a.balance::text, 'threshold', a.threshold::text))
        into usage_alerts
      from unnest(v_alert_org, v_alert_balance, v_alert_threshold) a(i, balance, threshold);
    end if;

    if v_duplicates > 0 then
      select jsonb_agg(jsonb_build_object('k', k, 'id', v_first_id[k], 'cost', v_first_cost[k]::text,
                                          'catalog_version', v_first_version[k], 'hold_id', v_first_hold_id[k]))
        into usage_duplicates
      from generate_subscripts(usage_outcomes, 1) k
      where usage_outcomes[k] = 'duplicate';
    end if;
  end if;

  if na > 0 then
    insert into holds (id, org_id, amount, status, idempotency_key, product, model, estimate, catalog_version, expires_at, created_at, transaction_id)
    select a_hold_ids[k], p_orgs[a_org_idx[k]], a_amounts[k], 'active', a_keys[k], a_products[k], a_models[k], a_estimates[k]::jsonb,
           a_versions[k], a_expires_at[k], p_now, case when a_amounts[k] > 0 then p_hold_txns[a_org_idx[k]] end
    from generate_subscripts(a_org_idx, 1) k
    where v_granted[k];

    if v_details > 0 then
      select jsonb_agg(case authorize_outcomes[k]
               when 'insufficient_balance' then jsonb_build_object('k', k, 'available', v_available[k]::text)
               else jsonb_build_object('k', k, 'id', v_replay_id[k], 'amount', v_replay_amount[k]::text, 'status', v_replay_status[k],
                      'expires_at', v_replay_expires_at[k], 'created_at', v_replay_created_at[k], 'catalog_version', v_replay_version[k])
             end)
        into authorize_details
      from generate_subscripts(authorize_outcomes, 1) k
      where authorize_outcomes[k] in ('insufficient_balance', 'replayed');
    end if;
  end if;
end $$;
