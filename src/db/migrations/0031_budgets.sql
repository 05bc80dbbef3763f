-- Budgets: a monthly spending limit for an organization, one of its projects or one of its API
-- keys (issue #16). 'hard' budgets refuse authorizations that would exceed them (inside
-- metering_decide, the same locked decision as the balance check); 'soft' ones only tell
-- (budget.threshold_reached at 80 % and 100 %). Both tell.
--
-- A budget is configuration the customer changes: deleting one sets deleted_at (the app deletes
-- no rows), and its period counters stay. One live budget per target: (org, scope, project or key).
-- A key budget names a key of the same organization: the foreign key is on (api_key_id, org_id).
alter table api_keys add constraint api_keys_id_org unique (id, org_id);

create table budgets (
  id text primary key,
  org_id text not null references organizations(id),
  scope text not null check (scope in ('org', 'project', 'key')),
  project text check (project ~ '^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$'),
  api_key_id text,
  -- nano-USD per calendar month (UTC); at most 10,000,000 USD (src/billing/budgets.ts MAX_BUDGET_LIMIT)
  limit_amount bigint not null check (limit_amount > 0 and limit_amount <= 10000000000000000),
  enforcement text not null check (enforcement in ('hard', 'soft')),
  created_at timestamptz not null,
  updated_at timestamptz not null,
  deleted_at timestamptz,
  foreign key (api_key_id, org_id) references api_keys (id, org_id),
  check (case scope
    when 'org' then project is null and api_key_id is null
    when 'project' then project is not null and api_key_id is null
    else api_key_id is not null and project is null
  end)
);
-- One live budget per target; also the per-organization probe of the metering hot path.
create unique index budgets_target on budgets (org_id, scope, coalesce(project, ''), coalesce(api_key_id, ''))
  where deleted_at is null;

-- What a budget's scope spent in one period (the calendar month in UTC that contains the usage's
-- recorded_at, i.e. the batch's time): kept exactly by metering_batch (metering_budget_spend) under
-- the organization's lock, and initialized from usage_events when the budget is created
-- (src/billing/budgets.ts). notified_*_at: when budget.threshold_reached was written for 80 % and
-- 100 % of the limit in this period (each once; reset when the limit changes).
create table budget_periods (
  budget_id text not null references budgets(id),
  period_start timestamptz not null,
  spent bigint not null check (spent >= 0),
  notified_80_at timestamptz,
  notified_100_at timestamptz,
  primary key (budget_id, period_start)
);
