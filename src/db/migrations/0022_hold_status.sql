-- A hold is closed only as 'settled' (by usage) or 'expired' (its amount goes back to credits;
-- src/db/functions/metering.sql); nothing writes 'released', so the check stops allowing it. A row that has it anyway stops the migration with this message rather than
-- being rewritten into a state it never reached.
do $$
begin
  if exists (select 1 from holds where status = 'released') then
    raise exception 'holds has rows with status ''released''; decide what they are before tightening holds_status_check';
  end if;
end
$$;

alter table holds drop constraint holds_status_check;
alter table holds add constraint holds_status_check check (status in ('active', 'settled', 'expired'));
