import { describe, expect } from "vitest";
import { pruneBuilds } from "../../src/indexer-deploy/prune-builds.js";
import type { TestDatabase } from "../support/database.js";
import { dbTest as it } from "../support/fixtures.js";

const NOW = 1_800_000_000_000;
const app = (a: { ready: 0 | 1; locked: 0 | 1; secondsAgo: number }) => ({
  version: "6",
  build_id: "x",
  is_ready: a.ready,
  is_locked: a.locked,
  is_dev: 0,
  heartbeat_at: NOW - a.secondsAgo * 1000,
});

/**
 * Which schemas the indexer drops after its build is ready, on schemas laid out as Ponder 0.16
 * leaves them (`_ponder_meta` with the app's row; views in the views schema over the live build).
 * test/indexer/deploy.test.ts shows the same with real Ponder builds.
 */
describe("pruneBuilds", () => {
  async function build(db: TestDatabase, schema: string, value: object | undefined) {
    await db.sql.unsafe(
      `create schema "${schema}"; create table "${schema}"._ponder_meta (key text primary key, value jsonb not null)`,
    );
    if (value) await db.sql`insert into ${db.sql(schema)}._ponder_meta values ('app', ${db.sql.json(value as never)})`;
  }
  async function pointViews(db: TestDatabase, views: string, at: string) {
    await db.sql.unsafe(
      `create schema if not exists "${views}"; create or replace view "${views}"._ponder_meta as select * from "${at}"._ponder_meta`,
    );
  }
  const schemas = async (db: TestDatabase, like: string) =>
    (await db.sql<{ s: string }[]>`select nspname as s from pg_namespace where nspname like ${like} order by 1`).map(
      (r) => r.s,
    );

  it("keeps the live build, the one just started, the previous one and running ones; drops the rest", async ({
    db,
  }) => {
    await build(db, "husd_indexer_000000000a", app({ ready: 1, locked: 0, secondsAgo: 3600 })); // old, was live once
    await build(db, "husd_indexer_000000000b", app({ ready: 1, locked: 0, secondsAgo: 600 })); // previous: ran last of the ready ones
    await build(db, "husd_indexer_000000000c", app({ ready: 0, locked: 0, secondsAgo: 300 })); // a deploy that never became ready
    await build(db, "husd_indexer_000000000d", app({ ready: 0, locked: 1, secondsAgo: 3000 })); // crashed while backfilling: lock expired
    await build(db, "husd_indexer_000000000e", app({ ready: 0, locked: 1, secondsAgo: 5 })); // another indexer starting right now
    await build(db, "husd_indexer_000000000f", undefined); // Ponder is creating it (no app row yet)
    await build(db, "husd_indexer_0000000010", app({ ready: 1, locked: 1, secondsAgo: 2 })); // live
    await build(db, "husd_indexer_notes", app({ ready: 1, locked: 0, secondsAgo: 9000 })); // shares the prefix, not a build of ours
    await build(db, "other_indexer_000000000a", app({ ready: 1, locked: 0, secondsAgo: 9000 })); // another deployment's
    await pointViews(db, "husd_indexer", "husd_indexer_0000000010");

    const result = await pruneBuilds(db.sql, {
      viewsSchema: "husd_indexer",
      current: "husd_indexer_0000000010",
      now: NOW,
    });

    expect(result).toEqual({
      live: "husd_indexer_0000000010",
      previous: "husd_indexer_000000000b",
      dropped: expect.arrayContaining([
        "husd_indexer_000000000a",
        "husd_indexer_000000000c",
        "husd_indexer_000000000d",
      ]),
    });
    expect(result.dropped).toHaveLength(3);
    expect(await schemas(db, "husd\\_indexer%")).toEqual([
      "husd_indexer",
      "husd_indexer_000000000b",
      "husd_indexer_000000000e",
      "husd_indexer_000000000f",
      "husd_indexer_0000000010",
      "husd_indexer_notes",
    ]);
    expect(await schemas(db, "other\\_indexer%")).toEqual(["other_indexer_000000000a"]);
    // The views still answer.
    expect(await db.sql`select 1 from husd_indexer._ponder_meta`).toHaveLength(1);
  });

  it("drops nothing before any build has been made live (no views yet)", async ({ db }) => {
    await build(db, "fresh_000000000a", app({ ready: 1, locked: 0, secondsAgo: 3600 }));
    await build(db, "fresh_000000000b", app({ ready: 0, locked: 0, secondsAgo: 60 }));
    expect(await pruneBuilds(db.sql, { viewsSchema: "fresh", current: "fresh_000000000c", now: NOW })).toEqual({
      live: undefined,
      previous: undefined,
      dropped: [],
    });
    expect(await schemas(db, "fresh\\_%")).toEqual(["fresh_000000000a", "fresh_000000000b"]);
  });

  it("after a rollback the build rolled back from is the previous one", async ({ db }) => {
    // Live was R2 (stopped a minute ago); R1, older, is deployed again and becomes live.
    await build(db, "roll_000000000a", app({ ready: 1, locked: 1, secondsAgo: 1 }));
    await build(db, "roll_000000000b", app({ ready: 1, locked: 0, secondsAgo: 60 }));
    await build(db, "roll_000000000c", app({ ready: 1, locked: 0, secondsAgo: 7200 }));
    await pointViews(db, "roll", "roll_000000000a");
    expect(await pruneBuilds(db.sql, { viewsSchema: "roll", current: "roll_000000000a", now: NOW })).toEqual({
      live: "roll_000000000a",
      previous: "roll_000000000b",
      dropped: ["roll_000000000c"],
    });
  });
});
