import type { Sql } from "../db/client.js";
import { APP_ROLE } from "../db/roles.js";

/**
 * Makes the views schema (if missing) as the indexer's role and lets the app read it: USAGE on
 * the schema and SELECT on its views, those there now and those Ponder makes at each switch
 * (default privileges of the role that makes them). The app gets nothing in the build schemas:
 * a view is read with its owner's rights. Run before Ponder starts, so the views are readable
 * from their first switch. Several indexers may start together (an overlapping deploy), so
 * one transaction at a time per schema.
 */
export async function shareViews(sql: Sql, viewsSchema: string, reader = APP_ROLE): Promise<void> {
  try {
    await sql.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(hashtextextended(${`hanzo-indexer-views:${viewsSchema}`}, 0))`;
      await tx`create schema if not exists ${tx(viewsSchema)}`;
      await tx`grant usage on schema ${tx(viewsSchema)} to ${tx(reader)}`;
      await tx`grant select on all tables in schema ${tx(viewsSchema)} to ${tx(reader)}`;
      await tx`alter default privileges in schema ${tx(viewsSchema)} grant select on tables to ${tx(reader)}`;
    });
  } catch (err) {
    throw new Error(
      `cannot share the views schema "${viewsSchema}" with ${reader} (${(err as Error).message}); ` +
        "run `npm run db:migrate` (it makes the roles and hands Ponder's existing schemas to hanzo_indexer) " +
        "and connect the indexer as a member of hanzo_indexer (INDEXER_DATABASE_URL)",
      { cause: err },
    );
  }
}
