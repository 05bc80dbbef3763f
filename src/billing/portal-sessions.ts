import { createHash, randomBytes, timingSafeEqual } from "node:crypto";
import { BillingError } from "../errors.js";
import { newId } from "../ids.js";
import type { KeyPermission, Principal } from "./api-keys.js";
import type { BillingContext } from "./context.js";

/** A portal link opens within this long of its creation, once. */
export const PORTAL_LINK_TTL_MS = 15 * 60_000;
/** A portal session lasts this long from the link's opening (the cookie's Max-Age too). */
export const PORTAL_SESSION_TTL_MS = 12 * 60 * 60_000;

/** Link and session tokens: 256 random bits, base64url; only their SHA-256 is stored. */
const newToken = () => randomBytes(32).toString("base64url");
const TOKEN_PATTERN = /^[A-Za-z0-9_-]{43}$/;
const hashToken = (token: string) => createHash("sha256").update(token).digest();

/**
 * A portal session's principal: the org key that made its link, with that key's permissions (a
 * session can do what its key could in the portal's routes, never more), and the session itself.
 */
export type PortalPrincipal = Principal & { orgId: string; portalSession: { id: string; csrfToken: string } };

export const isPortalPrincipal = (p: Principal): p is PortalPrincipal => "portalSession" in p;

export type PortalLink = { id: string; token: string; expiresAt: Date };

/**
 * A single-use link for the org key `principal` (POST /v1/billing/portal-sessions). The token is in
 * the return value only; the row keeps its hash. A portal session cannot make links (a link is
 * how a console or CLI holding a key sends its user in).
 */
export async function createPortalLink(ctx: BillingContext, input: { principal: Principal }): Promise<PortalLink> {
  const { principal } = input;
  if (principal.scope !== "org" || !principal.orgId || isPortalPrincipal(principal))
    throw new BillingError("insufficient_scope", "portal links are made with an organization's API key");
  const now = ctx.clock();
  const id = newId("psess");
  const token = newToken();
  const expiresAt = new Date(now.getTime() + PORTAL_LINK_TTL_MS);
  await ctx.sql`
    insert into portal_sessions (id, org_id, api_key_id, link_token_hash, link_expires_at, created_at)
    values (${id}, ${principal.orgId}, ${principal.keyId}, ${hashToken(token)}, ${expiresAt}, ${now})`;
  return { id, token, expiresAt };
}

export type OpenedSession = { id: string; sessionToken: string; expiresAt: Date };

/**
 * Exchanges a link token for a session: one guarded UPDATE (not yet opened, not expired, not
 * revoked, its key live), so of two racing opens exactly one gets the session. Every refusal
 * says the same to the browser (an unknown, used, expired or revoked link are alike to it).
 */
/**
 * The organization a link would open a session for, if it can still be opened, without using it:
 * what the link's page shows before the person asks for the session (opening it is a POST, so a
 * mail scanner's GET of the link never uses it up). Refused as openPortalLink refuses.
 */
export async function peekPortalLink(ctx: BillingContext, input: { token: string }): Promise<{ orgName: string }> {
  if (!TOKEN_PATTERN.test(input.token)) throw linkRefused();
  const [row] = await ctx.sql<{ name: string }[]>`
    select o.name from portal_sessions s
    join api_keys k on k.id = s.api_key_id
    join organizations o on o.id = s.org_id
    where s.link_token_hash = ${hashToken(input.token)} and s.opened_at is null and s.revoked_at is null
      and s.link_expires_at > ${ctx.clock()} and k.revoked_at is null`;
  if (!row) throw linkRefused();
  return { orgName: row.name };
}

export async function openPortalLink(ctx: BillingContext, input: { token: string }): Promise<OpenedSession> {
  if (!TOKEN_PATTERN.test(input.token)) throw linkRefused();
  const now = ctx.clock();
  const sessionToken = newToken();
  const expiresAt = new Date(now.getTime() + PORTAL_SESSION_TTL_MS);
  const [row] = await ctx.sql<{ id: string }[]>`
    update portal_sessions s
    set opened_at = ${now}, session_token_hash = ${hashToken(sessionToken)}, session_expires_at = ${expiresAt},
        csrf_token = ${newToken()}
    from api_keys k
    where s.link_token_hash = ${hashToken(input.token)} and s.opened_at is null and s.revoked_at is null
      and s.link_expires_at > ${now} and k.id = s.api_key_id and k.revoked_at is null
    returning s.id`;
  if (!row) throw linkRefused();
  return { id: row.id, sessionToken, expiresAt };
}

const linkRefused = () =>
  new BillingError(
    "invalid_api_key",
    "this billing portal link has expired or was already used: links open once, within 15 minutes. Ask for a new link.",
  );

/**
 * The principal of a session cookie, or a 401: unknown, expired, revoked, or its key revoked since.
 * One indexed query per request (sessions are not cached, so a revocation holds at once).
 */
export async function authenticatePortalSession(ctx: BillingContext, token: string): Promise<PortalPrincipal> {
  const refused = () =>
    new BillingError(
      "invalid_api_key",
      "your billing portal session has ended: open a new portal link to sign in again",
    );
  if (!TOKEN_PATTERN.test(token)) throw refused();
  const digest = hashToken(token);
  const [row] = await ctx.sql<
    {
      id: string;
      org_id: string;
      api_key_id: string;
      permissions: KeyPermission[];
      csrf_token: string;
      session_token_hash: Buffer;
    }[]
  >`
    select s.id, s.org_id, s.api_key_id, k.permissions, s.csrf_token, s.session_token_hash
    from portal_sessions s join api_keys k on k.id = s.api_key_id
    where s.session_token_hash = ${digest} and s.revoked_at is null and s.session_expires_at > ${ctx.clock()}
      and k.revoked_at is null`;
  if (!row || !timingSafeEqual(row.session_token_hash, digest)) throw refused();
  return {
    keyId: row.api_key_id,
    orgId: row.org_id,
    scope: "org",
    permissions: row.permissions,
    portalSession: { id: row.id, csrfToken: row.csrf_token },
  };
}

/** True when `sent` is the session's CSRF token (constant time). */
export function csrfTokenMatches(principal: PortalPrincipal, sent: string | undefined): boolean {
  if (!sent) return false;
  const want = Buffer.from(principal.portalSession.csrfToken);
  const got = Buffer.from(sent);
  return want.length === got.length && timingSafeEqual(want, got);
}

/**
 * Ends one of the organization's portal sessions (or an unopened link): it is refused from now on.
 * Another organization's session is 404. Revoking a revoked session answers its revocation again.
 */
export async function revokePortalSession(
  ctx: BillingContext,
  input: { orgId: string; id: string },
): Promise<{ id: string; revokedAt: Date }> {
  const [row] = await ctx.sql<{ id: string; revoked_at: Date }[]>`
    update portal_sessions set revoked_at = coalesce(revoked_at, ${ctx.clock()})
    where id = ${input.id} and org_id = ${input.orgId}
    returning id, revoked_at`;
  if (!row) throw new BillingError("not_found", `no portal session ${input.id}`);
  return { id: row.id, revokedAt: row.revoked_at };
}
