import fc from "fast-check";
import { describe, expect } from "vitest";
import type { TransactionSql } from "../../src/db/client.js";
import { manualClock } from "../support/app.js";
import type { TestDatabase } from "../support/database.js";
import { appTest } from "../support/fixtures.js";

// Each phase of metering_batch (src/db/functions/metering.sql) called on its own, inside a
// transaction that is rolled back, against rows the real API wrote.

const NOW = new Date("2026-11-15T12:00:00Z");
const org = (org_id: string) => ({
  org_id,
  usage_txn: `txn_u_${org_id}`,
  alert_id: null,
});
const orgsJson = (ids: string[]) => JSON.stringify(ids.map(org));

class Rollback extends Error {}
/** Runs `fn` in a transaction that never commits. */
async function inRollback<T>(db: TestDatabase, fn: (tx: TransactionSql) => Promise<T>): Promise<T> {
  let out: T | undefined;
  await db.sql
    .begin(async (tx) => {
      out = await fn(tx);
      throw new Rollback();
    })
    .catch((e: unknown) => {
      if (!(e instanceof Rollback)) throw e;
    });
  return out!;
}

type Org = { id: string; gatewayKey: string };

/** Two funded organizations and their holds, written by the real API once for the file; each test rolls back. */
const it = appTest.extend<{ seed: { a: Org; b: Org; holds: Record<string, string> } }>({
  seed: [
    async ({ app }, use) => {
      const [a, b] = [await app.createOrg("a"), await app.createOrg("b")];
      for (const o of [a, b]) await app.grant(o.id, "1.00");
      const holds: Record<string, string> = {};
      const hold = async (o: Org, name: string, ttl: number) => {
        const res = await app.call("POST", "/v1/billing/authorize", {
          key: o.gatewayKey,
          body: { org_id: o.id, product: "api", estimate: { requests: 10 }, ttl_seconds: ttl, idempotency_key: name },
        });
        holds[name] = res.json.hold_id;
      };
      await hold(a, "a-live", 3600);
      await hold(a, "a-expired", 30);
      await hold(a, "a-expired-2", 30);
      await hold(b, "b-expired", 30);
      await use({ a, b, holds });
    },
    { scope: "file" },
  ],
});

describe("metering_batch's phases", () => {
  it.scoped({ appOptions: { clock: manualClock(new Date(NOW.getTime() - 60_000)) } });

  it("expire_holds closes the past-expiry holds of the swept organizations and the named ones, once", async ({
    db,
    seed: { a, b, holds },
  }) => {
    const [first, second] = await inRollback(db, async (tx) => {
      const run = () =>
        tx<{ expired: string[]; expired_n: number[] }[]>`
          select expired::text[], expired_n from metering_expire_holds(${NOW}, array(select jsonb_populate_record(null::metering_org, e) from jsonb_array_elements(${orgsJson([a.id, b.id])}::text::jsonb) e),
                                                   array[true, false], array[${holds["b-expired"]!}, ${holds["a-live"]!}]::text[])`;
      const r1 = await run();
      const r2 = await run();
      const states = await tx<
        { id: string; status: string; close_transaction_id: string | null }[]
      >`select id, status, close_transaction_id from holds where org_id in (${a.id}, ${b.id})`;
      return [{ ...r1[0]!, states }, r2[0]!];
    });
    expect(first.expired).toEqual(["2000000", "1000000"]); // $0.001 a hold
    expect(first.expired_n).toEqual([2, 1]);
    const status = Object.fromEntries(first.states.map((s) => [s.id, s]));
    expect(status[holds["a-live"]!]!.status).toBe("active"); // named, but not past its expiry
    // A hold is a reservation: its expiry posts nothing, so it names no transaction.
    expect(status[holds["a-expired"]!]).toMatchObject({ status: "expired", close_transaction_id: null });
    expect(status[holds["b-expired"]!]).toMatchObject({ status: "expired", close_transaction_id: null });
    expect(second.expired).toEqual(["0", "0"]);
  });

  it("settle answers every kind of event from the holds as they are, and closes each hold once", async ({
    db,
    seed: { a, holds },
  }) => {
    const ev = (over: Record<string, unknown>) => ({
      org: 1,
      id: `use_${Math.random()}`,
      key: `k${Math.random()}`,
      prev: null,
      occurred_at: NOW.toISOString(),
      product: "api",
      model: "",
      quantities: { requests: "1" },
      cost: "100000",
      catalog_version: "2026-01-01",
      hold_id: null,
      hold_first: null,
      ...over,
    });
    const events = [
      ev({ hold_id: holds["a-live"], hold_first: 1 }),
      ev({ hold_id: holds["a-live"], hold_first: 1 }), // the same hold again
      ev({ hold_id: holds["b-expired"], hold_first: 3 }), // another organization's hold
      ev({ hold_id: "hold_missing", hold_first: 4 }),
      ev({ key: "dup" }),
      ev({ key: "dup", prev: 5 }),
      ev({ key: "dup", prev: 6, quantities: { requests: "2" } }),
      ev({ org: 2 }),
    ];
    const r = await inRollback(db, async (tx) => {
      const [out] = await tx<{ outcomes: string[]; cost: string[]; settled: string[] }[]>`
        select outcomes, cost::text[], settled::text[] from metering_settle(${NOW},
          array(select jsonb_populate_record(null::metering_org, e) from jsonb_array_elements(${orgsJson([a.id, "org_unknown"])}::text::jsonb) e),
          array(select jsonb_populate_record(null::metering_usage, e) from jsonb_array_elements(${JSON.stringify(events)}::text::jsonb) e),
          array[1000000000, null]::bigint[], array[false, false])`;
      const [h] = await tx<{ status: string }[]>`select status from holds where id = ${holds["a-live"]!}`;
      return { ...out!, live: h!.status };
    });
    expect(r.outcomes).toEqual([
      "settled",
      "already_closed",
      "hold_not_found",
      "hold_not_found",
      "recorded",
      "duplicate",
      "idempotency_key_reused",
      "unknown_organization",
    ]);
    expect(r.settled).toEqual(["1000000", "0"]);
    expect(r.cost).toEqual(["300000", "0"]); // the settled, the already-closed and the first "dup"
    expect(r.live).toBe("settled");
  });

  it("decide replays, refuses a reused key, and holds in order up to what is spendable", async ({
    db,
    seed: { a },
  }) => {
    const auth = (over: Record<string, unknown>) => ({
      org: 1,
      hold_id: `hold_${Math.random()}`,
      amount: "400000000",
      key: null,
      prev: null,
      product: "api",
      model: "",
      estimate: { requests: "10" },
      catalog_version: "2026-01-01",
      ttl_seconds: 3600,
      ...over,
    });
    const auths = [
      auth({ key: "a-live", amount: "1000000" }), // a replay of the live hold
      auth({ key: "a-live", estimate: { requests: "11" } }), // the same key, another estimate
      auth({}),
      auth({}),
      auth({}), // 3 × $0.40 against $0.97 spendable: the third is refused
    ];
    const [r] = await inRollback(
      db,
      (tx) => tx<
        { outcomes: string[]; newly_held: string[]; details: { k: number; status?: string; available?: string }[] }[]
      >`
      select outcomes, newly_held::text[], details from metering_decide(${NOW},
        array(select jsonb_populate_record(null::metering_org, e) from jsonb_array_elements(${orgsJson([a.id])}::text::jsonb) e),
        array(select jsonb_populate_record(null::metering_authorization, e) from jsonb_array_elements(${JSON.stringify(auths)}::text::jsonb) e),
        array[970000000]::bigint[], array[false])`,
    );
    expect(r!.outcomes).toEqual(["replayed", "idempotency_key_reused", "held", "held", "insufficient_balance"]);
    expect(r!.newly_held).toEqual(["800000000"]);
    expect(r!.details).toEqual([expect.objectContaining({ k: 1, status: "active" }), { k: 5, available: "170000000" }]);
  });

  it("grant_expiry_taken: each live hold shields, once, the expired grants it would be charged to, soonest expiry first", async ({
    db,
    seed: { a },
  }) => {
    // A reference of the rule in money_rules.sql, against random grants and holds of one org.
    const at = (s: number) => new Date(NOW.getTime() + s * 1000);
    const grant = fc.record({
      created: fc.integer({ min: -20, max: 0 }),
      life: fc.integer({ min: 1, max: 25 }),
      amount: fc.integer({ min: 1, max: 9 }),
      used: fc.integer({ min: 0, max: 9 }),
    });
    const hold = fc.record({
      created: fc.integer({ min: -20, max: 0 }),
      ttl: fc.integer({ min: 1, max: 30 }),
      amount: fc.integer({ min: 0, max: 12 }),
      active: fc.boolean(),
    });
    await fc.assert(
      fc.asyncProperty(fc.array(grant, { maxLength: 4 }), fc.array(hold, { maxLength: 4 }), async (grants, holds) => {
        const gs = grants.map((g, k) => ({
          ...g,
          k,
          expires: g.created + g.life,
          unused: BigInt(g.amount - Math.min(g.used, g.amount)),
        }));
        const pending = gs.filter((g) => g.expires <= 0).sort((x, y) => x.expires - y.expires || x.k - y.k);
        const left = new Map(pending.map((g) => [g.k, g.unused]));
        for (const h of holds.map((h, k) => ({ ...h, k })).sort((x, y) => x.created - y.created || x.k - y.k)) {
          if (!h.active || h.created + h.ttl <= 0) continue;
          let shield = BigInt(h.amount);
          for (const g of pending) {
            if (h.created < g.created || h.created >= g.expires) continue;
            const take = left.get(g.k)! < shield ? left.get(g.k)! : shield;
            left.set(g.k, left.get(g.k)! - take);
            shield -= take;
          }
        }
        const expected = [...left.values()].reduce((x, y) => x + y, 0n);
        const taken = await inRollback(db, async (tx) => {
          for (const g of gs) {
            const txn = `txn_g_${g.k}`;
            await tx`insert into ledger_transactions (id, org_id, kind, idempotency_key, description, created_at) values (${txn}, ${a.id}, 'grant', ${txn}, 'test', ${at(g.created)})`;
            await tx`insert into credit_grants (id, org_id, transaction_id, amount, consumed, reason, expires_at, created_at)
                     values (${`grant_${g.k}`}, ${a.id}, ${txn}, ${g.amount}, ${Math.min(g.used, g.amount)}, 'test', ${at(g.expires)}, ${at(g.created)})`;
          }
          for (const [k, h] of holds.entries()) {
            await tx`insert into holds (id, org_id, amount, status, product, estimate, catalog_version, expires_at, created_at)
                     values (${`hold_t${k}`}, ${a.id}, ${h.amount}, ${h.active ? "active" : "settled"}, 'api', '{}', '2026-01-01', ${at(h.created + h.ttl)}, ${at(h.created)})`;
          }
          // Only this test's rows: the org's own holds from beforeAll were taken before any of these grants.
          const [row] = await tx<{ taken: bigint }[]>`select grant_expiry_taken(${a.id}, ${NOW}) as taken`;
          return row!.taken;
        });
        expect(taken).toBe(expected);
      }),
      { numRuns: 60 },
    );
  });
});
