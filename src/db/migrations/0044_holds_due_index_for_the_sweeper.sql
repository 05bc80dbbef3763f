-- holds_active_expiry is for the sweeper, which looks for the organizations that have holds past
-- their expiry across all organizations (expireHolds, src/billing/holds.ts). A batch that authorizes
-- for an organization looks for that organization's due holds only, through holds_active_org (its
-- org_id first). A plan made right after a vacuum, when both indexes were empty, used
-- holds_active_expiry for that too, filtering on org_id: it read every organization's due holds, once
-- per organization of the batch, and the sweeper once per organization it swept, holding their locks
-- (test/metering/hold-sweep-plan.test.ts). Its predicate now also says org_id <> '', which a probe
-- for one organization (org_id = a parameter of a generic plan) does not imply, so the planner cannot
-- use it there; the sweeper's query says it (an organization's id is never empty).
drop index holds_active_expiry;
create index holds_active_expiry on holds (expires_at) where status = 'active' and org_id <> '';
