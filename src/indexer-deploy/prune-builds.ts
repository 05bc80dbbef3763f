import type { Sql } from "../db/client.js";

/** What Ponder 0.16 keeps about the app in its `_ponder_meta` table (key `app`), the part we read. */
type PonderApp = { build_id?: string; is_ready?: 0 | 1; is_locked?: 0 | 1; heartbeat_at?: number };

export type PrunedBuilds = { live: string | undefined; previous: string | undefined; dropped: string[] };

/** Ponder takes over a locked schema after 25 s without a heartbeat; a fresher one belongs to a running indexer. */
const RUNNING_HEARTBEAT_MS = 60_000;

/**
 * Drops the schemas of old indexer builds (`<viewsSchema>_<10 hex>`, see buildSchema), keeping:
 * the live one (where the views in `viewsSchema` point), the build that has just started
 * (`current`), the previous one (of the other builds that became ready, the one that ran last:
 * the largest `heartbeat_at`), and any build an indexer is running right now. Run it only after
 * the current build is ready, so that until then the old build's rows stay readable.
 */
export async function pruneBuilds(
  sql: Sql,
  opts: { viewsSchema: string; current: string; now?: number },
): Promise<PrunedBuilds> {
  const now = opts.now ?? Date.now();
  const [view] = await sql<{ schema: string }[]>`
    select table_schema as schema from information_schema.view_table_usage
    where view_schema = ${opts.viewsSchema} and view_name = '_ponder_meta'`;
  const live = view?.schema;
  // Before any build has been made live, nothing tells a useful schema from a useless one.
  if (!live) return { live, previous: undefined, dropped: [] };

  const ours = new RegExp(`^${opts.viewsSchema}_[0-9a-f]{10}$`);
  const schemas = (
    await sql<{ schema: string }[]>`
      select table_schema as schema from information_schema.tables
      where table_name = '_ponder_meta' and table_type = 'BASE TABLE'`
  )
    .map((r) => r.schema)
    .filter((s) => ours.test(s) && s !== live && s !== opts.current);

  const others: { schema: string; app: PonderApp | undefined }[] = [];
  for (const schema of schemas) {
    const [row] = await sql<{ value: PonderApp }[]>`select value from ${sql(schema)}._ponder_meta where key = 'app'`;
    others.push({ schema, app: row?.value });
  }
  const previous = others
    .filter((o) => o.app?.is_ready === 1)
    .sort((a, b) => (b.app?.heartbeat_at ?? 0) - (a.app?.heartbeat_at ?? 0))[0]?.schema;
  const running = (app: PonderApp | undefined) =>
    app === undefined || (app.is_locked === 1 && now - (app.heartbeat_at ?? 0) < RUNNING_HEARTBEAT_MS);

  const dropped: string[] = [];
  for (const { schema, app } of others) {
    if (schema === previous || running(app)) continue;
    await sql`drop schema if exists ${sql(schema)} cascade`;
    dropped.push(schema);
  }
  return { live, previous, dropped };
}
