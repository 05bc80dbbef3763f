-- Usage attribution: the organization's API key the gateway served (api_key_id) and the
-- customer's project label, on usage events and on holds, for the usage report's group_by.
-- Nullable columns without a default: adding them rewrites no rows, and the hot path's insert
-- (metering_post) writes them only when given. No foreign key: metering_settle checks the key
-- belongs to the event's organization (a primary-key probe, only when one is named), and keys
-- are never deleted (revoking sets revoked_at), so a revoked key's usage keeps its attribution.
alter table usage_events add column api_key_id text;
alter table usage_events add column project text check (project ~ '^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$');
alter table holds add column api_key_id text;
alter table holds add column project text check (project ~ '^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$');
