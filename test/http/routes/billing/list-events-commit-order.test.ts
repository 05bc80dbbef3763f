import fc from "fast-check";
import { describe, expect } from "vitest";
import { emitEvent } from "../../../../src/billing/events/emit.js";
import { appTest as it } from "../../../support/fixtures.js";
import { appearedBelowKnown } from "../../../support/polling.js";

/**
 * The event log pages newest first by seq, so for one organization seq must follow commit order
 * (billing_events_seq_at_commit, src/db/functions/events.sql): an event that commits after a
 * client read the log must never land below what the client saw, or a client that polls by
 * reading until the first event it knows misses it for ever.
 */
describe("GET /v1/billing/events: an organization's events are listed in the order they committed", () => {
  type Listed = { id: string; type: string; data: { n?: number } };

  it("an event written by a transaction still in flight is listed above one that committed in the meantime", async ({
    app,
    db,
  }) => {
    const a = await app.createOrg("A");
    const list = async () => {
      const res = await app.call("GET", "/v1/billing/events?type=test.ping&limit=10", { key: a.orgKey });
      expect(res.status).toBe(200);
      return (res.json.data as Listed[]).map((e) => e.data.n);
    };
    await db.appSql.begin(async (tx) => {
      // Written first (and, before migration 0043, numbered first), two events in one transaction.
      await emitEvent(tx, { orgId: a.id, type: "test.ping", factKey: "slow-1", data: { n: 1 }, at: new Date() });
      await emitEvent(tx, { orgId: a.id, type: "test.ping", factKey: "slow-2", data: { n: 2 }, at: new Date() });
      // Another transaction writes its event and commits while this one is still working.
      await db.appSql.begin((other) =>
        emitEvent(other, { orgId: a.id, type: "test.ping", factKey: "fast", data: { n: 3 }, at: new Date() }),
      );
      expect(await list()).toEqual([3]);
    });
    // The slow transaction committed last: its events come first, the last written at the top.
    expect(await list()).toEqual([2, 1, 3]);
    const seqs = await db.sql<{ seq: string }[]>`
      select seq::text from billing_events where org_id = ${a.id} and type = 'test.ping' order by seq`;
    expect(seqs.every((r) => BigInt(r.seq) > 0n)).toBe(true);
  });

  it("a committed event's seq never changes again", async ({ app, db }) => {
    const a = await app.createOrg("A");
    await db.appSql.begin((tx) =>
      emitEvent(tx, { orgId: a.id, type: "test.ping", factKey: "fixed", data: {}, at: new Date() }),
    );
    const seq = async () =>
      (
        await db.sql<
          { seq: string }[]
        >`select seq::text from billing_events where org_id = ${a.id} and type = 'test.ping'`
      )[0]!.seq;
    const committed = await seq();
    expect(BigInt(committed)).toBeGreaterThan(0n);
    for (const change of [
      db.appSql`update billing_events set seq = seq + 1000 where org_id = ${a.id}`,
      db.appSql`update billing_events set seq = -seq where org_id = ${a.id}`,
    ])
      await expect(change).rejects.toThrow(/append-only/);
    expect(await seq()).toBe(committed);
  });

  it("transactions writing events of the same organizations in opposite orders all commit (no deadlock)", async ({
    app,
    db,
  }) => {
    const a = await app.createOrg("A");
    const b = await app.createOrg("B");
    const writers = Array.from({ length: 24 }, (_, i) =>
      db.appSql.begin(async (tx) => {
        const orgs = i % 2 === 0 ? [a.id, b.id] : [b.id, a.id];
        for (const [j, orgId] of orgs.entries()) {
          await emitEvent(tx, { orgId, type: "test.ping", factKey: `w-${i}-${j}`, data: { n: i }, at: new Date() });
          await tx`select pg_sleep(0.002)`;
        }
      }),
    );
    const outcomes = await Promise.allSettled(writers);
    expect(outcomes.filter((o) => o.status === "rejected")).toEqual([]);
    // Both organizations' logs list each transaction's events in the same order: the commit order.
    const order = async (orgId: string) =>
      (
        await db.sql<{ n: number }[]>`
          select (data->>'n')::int as n from billing_events where org_id = ${orgId} and type = 'test.ping' order by seq`
      ).map((r) => r.n);
    expect(await order(a.id)).toEqual(await order(b.id));
  });

  it("generated: a reader polling the log while grants and slow event writers race never sees an event appear below one it saw", async ({
    app,
    db,
  }) => {
    const a = await app.createOrg("A");
    let n = 0;
    const grant = () => app.grant(a.id, "1", `g-${++n}`);
    // A writer that keeps its transaction open a while after writing its event, as a cycle close
    // or a webhook's handling does.
    const slowEvent = (ms: number) =>
      db.appSql.begin(async (tx) => {
        const k = ++n;
        await emitEvent(tx, { orgId: a.id, type: "test.ping", factKey: `slow-${k}`, data: { n: k }, at: new Date() });
        await tx`select pg_sleep(${ms / 1000})`;
      });
    const newestIds = async (): Promise<string[]> => {
      const res = await app.call("GET", "/v1/billing/events?limit=100", { key: a.orgKey });
      expect(res.status).toBe(200);
      return (res.json.data as Listed[]).map((e) => e.id);
    };

    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.oneof(fc.constant("grant" as const), fc.integer({ min: 0, max: 30 })), {
          minLength: 4,
          maxLength: 12,
        }),
        async (ops) => {
          // What is new since a poll must all sit above everything that poll showed.
          expect(
            await appearedBelowKnown(newestIds, () =>
              Promise.all(ops.map((op) => (op === "grant" ? grant() : slowEvent(op)))),
            ),
          ).toEqual([]);
        },
      ),
      { numRuns: 15 },
    );
  });
});
