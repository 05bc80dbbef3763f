-- Billing portal sessions (src/billing/portal-sessions.ts). One row is first a single-use link
-- (POST /v1/billing/portal-sessions: only the link token's hash is kept, valid 15 minutes to
-- open) and then, once opened, a browser session of 12 hours (only the session token's hash is
-- kept, in the HttpOnly cookie). Opening is one guarded UPDATE (opened_at is null), so two racing
-- opens of one link start one session. A session acts as the org key that made the link, with its
-- permissions: revoking that key ends the session too.
create table portal_sessions (
  id text primary key,
  org_id text not null references organizations (id),
  api_key_id text not null references api_keys (id),
  link_token_hash bytea not null unique,
  link_expires_at timestamptz not null,
  created_at timestamptz not null,
  opened_at timestamptz,
  session_token_hash bytea unique,
  session_expires_at timestamptz,
  -- Sent back by the page on every write (X-CSRF-Token); not a credential on its own (the cookie is).
  csrf_token text,
  revoked_at timestamptz,
  check ((opened_at is null) = (session_token_hash is null)),
  check ((opened_at is null) = (session_expires_at is null)),
  check ((opened_at is null) = (csrf_token is null))
);
create index portal_sessions_org on portal_sessions (org_id, created_at desc);
