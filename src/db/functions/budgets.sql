-- Budgets (migration 0031): the period rule, the spend counters metering_batch keeps, and the
-- threshold events. The counters are kept by metering_budget_spend and the hard check is made by
-- metering_decide, both in metering.sql (they take its composite types).

-- A budget's period: the calendar month in UTC that contains p_at (the time usage is recorded).
-- No SET clause, so the planner inlines it into the metering batch's statements (a function with
-- one is called, and planned, on its own); its names are qualified instead of pinned.
create or replace function budget_period_start(p_at timestamptz) returns timestamptz language sql immutable as $$
  select pg_catalog.timezone('UTC', pg_catalog.date_trunc('month', pg_catalog.timezone('UTC', p_at)))
$$;

-- budget.threshold_reached for a period row whose spend is at or above 80 % or 100 % of its
-- budget's limit and that has not told it yet: the guarded UPDATE of notified_*_at decides (a
-- racing writer of the same row waits for the first and then matches nothing), and the event's
-- fact key (budget, period, threshold, limit) makes a second event of the same fact impossible
-- too. Called by metering_budget_spend, and by the budget's creation (src/billing/budgets.ts) when
-- the spend already recorded in the period reaches a threshold.
create or replace function budget_note_thresholds(p_budget_id text, p_period_start timestamptz, p_now timestamptz)
returns void language plpgsql
  set search_path = billing, pg_temp as $$
declare
  b record;
  t int;
  v_noted boolean;
begin
  select bu.id, bu.org_id, bu.scope, bu.project, bu.api_key_id, bu.limit_amount, bu.enforcement, p.spent
    into b
  from budgets bu join budget_periods p on p.budget_id = bu.id and p.period_start = p_period_start
  where bu.id = p_budget_id and bu.deleted_at is null;
  if not found then
    return;
  end if;
  foreach t in array array[80, 100] loop
    continue when b.spent::numeric * 100 < b.limit_amount::numeric * t;
    if t = 80 then
      update budget_periods set notified_80_at = p_now
      where budget_id = p_budget_id and period_start = p_period_start and notified_80_at is null;
    else
      update budget_periods set notified_100_at = p_now
      where budget_id = p_budget_id and period_start = p_period_start and notified_100_at is null;
    end if;
    v_noted := found;
    continue when not v_noted;
    perform emit_event(b.org_id, 'budget.threshold_reached',
      b.id || ':' || to_char(p_period_start at time zone 'UTC', 'YYYY-MM') || ':' || t || ':' || b.limit_amount,
      jsonb_build_object('budget_id', b.id, 'scope', b.scope,
        'target', case b.scope when 'org' then b.org_id when 'project' then b.project else b.api_key_id end,
        'enforcement', b.enforcement, 'threshold', t,
        'period', to_char(p_period_start at time zone 'UTC', 'YYYY-MM'),
        'period_start', event_time(p_period_start),
        'period_end', event_time(p_period_start + interval '1 month'))
      || event_usd('limit', b.limit_amount) || event_usd('spent', b.spent),
      p_now);
  end loop;
end $$;
