-- An API key's identity never changes once made: its scope, organization, secret and permissions
-- are fixed at creation (so an org key can never become a gateway or admin key, nor gain
-- keys:write), and a revocation is final. What may change: last_used_at, and revoked_at from null
-- to a time. Keys are never deleted (hanzo_app has no DELETE); revoking marks them.
create or replace function api_keys_immutable() returns trigger language plpgsql
  set search_path = billing, pg_temp as $$
begin
  if new.id <> old.id or new.scope <> old.scope or new.org_id is distinct from old.org_id
     or new.key_hash <> old.key_hash or new.key_prefix <> old.key_prefix or new.created_at <> old.created_at
     or new.permissions <> old.permissions or new.name is distinct from old.name then
    raise exception 'an API key''s scope, organization, secret, name and permissions never change'
      using errcode = 'check_violation';
  end if;
  if old.revoked_at is not null and new.revoked_at is distinct from old.revoked_at then
    raise exception 'a revoked API key stays revoked' using errcode = 'check_violation';
  end if;
  return new;
end $$;

drop trigger if exists api_keys_immutable on api_keys;
create trigger api_keys_immutable before update on api_keys
  for each row execute function api_keys_immutable();
