-- Gateway keys are platform credentials: the gateway names the organization in every request and
-- a gateway key acts for all of them, so it belongs to none (org_id null). Until now they were made
-- under an organization, which read as if the key were that organization's to hand out; the ones
-- that exist keep their id and secret (so the gateway's configuration keeps working) and move out
-- of the organization they were made under, which their name remembers.
--
-- Org keys carry permissions for the self-serve key routes (/v1/billing/keys): 'keys:write'
-- creates and revokes the organization's keys; a key without it is read-only there. Every org key
-- that exists could do anything an org key could, so each keeps that: 'keys:write'.
--
-- last_used_at is written at most once a minute per key (src/billing/api-keys.ts, touchKeyUsed).
alter table api_keys alter column org_id drop not null;
alter table api_keys add column name text check (name is null or length(name) between 1 and 100);
alter table api_keys add column permissions text[] not null default '{}'
  check (permissions <@ array['keys:write']::text[]);
alter table api_keys add column last_used_at timestamptz;

update api_keys set org_id = null, name = 'gateway key (made under ' || org_id || ')' where scope = 'gateway';
update api_keys set permissions = array['keys:write'] where scope = 'org';

alter table api_keys add constraint api_keys_owner check (
  case scope
    when 'org' then org_id is not null
    when 'gateway' then org_id is null and permissions = '{}'
    else permissions = '{}'
  end
);
