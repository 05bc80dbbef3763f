-- A new low-balance alert tells the workers when its transaction commits (PostgreSQL delivers a
-- NOTIFY only on commit, and never for a rolled-back one), so a worker enqueues its delivery at
-- once, whichever path wrote it: usage, refunds, disputes, HUSD reversals, cycle close, grant
-- expiry. Alerts are rare (one per crossing), so the notification costs the hot path nothing.
-- A notification nobody heard (no worker listening at that moment) is caught by the sweep of
-- undelivered alerts, as before.
create function balance_alerts_notify() returns trigger language plpgsql as $$
begin
  perform pg_notify('balance_alerts', new.id);
  return null;
end $$;
create trigger balance_alerts_notify after insert on balance_alerts for each row execute function balance_alerts_notify();
