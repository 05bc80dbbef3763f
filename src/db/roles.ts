/**
 * The PostgreSQL roles (migration 0021_roles.sql, rights in functions/grants.sql). The NOLOGIN
 * roles hold the rights; processes log in as their members.
 */
/** The API and workers: read and write rows in schema billing, own nothing. */
export const APP_ROLE = "hanzo_app";
/** Ponder: its own schemas (one per build, ponder_sync, the views schema), nothing in billing. */
export const INDEXER_ROLE = "hanzo_indexer";

/** Login members the migrator makes for a development machine (no password: trust auth). */
export const APP_LOGIN = "hanzo_app_user";
export const INDEXER_LOGIN = "hanzo_indexer_user";
/** Who owns the tables and runs migrations when DATABASE_OWNER_URL is not set. */
export const OWNER_LOGIN = "postgres";

/** The same server, database and options as `url`, as another user and without a password. */
export function withUser(url: string, user: string): string {
  const u = new URL(url);
  u.username = encodeURIComponent(user);
  u.password = "";
  return u.toString();
}
