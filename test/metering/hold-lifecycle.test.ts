import { beforeEach, describe, expect } from "vitest";
import { expireGrants } from "../../src/billing/grants.js";
import { expireHolds, type Hold } from "../../src/billing/holds.js";
import type { UsageResult } from "../../src/billing/usage.js";
import { createTestApp, manualClock } from "../support/app.js";
import type { TestDatabase } from "../support/database.js";
import { type AppContext, appTest as it } from "../support/fixtures.js";
import { contextAt } from "../support/context.js";

// The "api" product costs $0.0001 a request: 125 requests = $0.0125.
const perRequestNano = 100_000n;

/** Each org's credits account: what it holds less what is reserved, the reserved, and its live holds. */
async function moneyOf(db: TestDatabase, orgId: string) {
  const [row] = await db.sql<{ credits: bigint; held: bigint; live: bigint }[]>`
    select c.balance - c.held as credits, c.held,
      (select coalesce(sum(amount), 0)::bigint from holds where org_id = ${orgId} and status = 'active') as live
    from ledger_accounts c
    where c.id = 'org:' || ${orgId} || ':credits'`;
  return row!;
}

describe("a hold is closed exactly once, and replays tell the truth", () => {
  const clock = manualClock();
  it.scoped({ dbOptions: { max: 10 }, appOptions: { clock } });
  beforeEach<AppContext>(async ({ app }) => {
    await app.metering.ready();
  });

  it("a hold past its expiry, settled in the same batch as its org's next authorization, is given back once", async ({
    app,
    db,
  }) => {
    // The gateway's case: settle the expired hold and authorize the next request in one instant,
    // before the sweep. Both land in one batch of the org's lane.
    const orgs = await Promise.all(Array.from({ length: 20 }, (_, i) => app.createOrg(`race-${i}`)));
    for (const org of orgs) await app.grant(org.id, "1.00");
    const holds = await Promise.all(
      orgs.map((org) =>
        app.metering.authorize(
          {
            orgId: org.id,
            product: "api",
            model: undefined,
            estimate: { requests: 125n },
            idempotencyKey: undefined,
            ttlSeconds: 1,
          },
          clock(),
        ),
      ),
    );
    clock.advance(2_000);
    const now = clock();
    const results = await Promise.all(
      orgs.map((org, i) =>
        Promise.all([
          app.metering.recordUsage(
            {
              orgId: org.id,
              idempotencyKey: `settle-${i}`,
              occurredAt: now,
              product: "api",
              model: undefined,
              quantities: { requests: 100n },
              holdId: holds[i]!.id,
            },
            now,
          ),
          app.metering.authorize(
            {
              orgId: org.id,
              product: "api",
              model: undefined,
              estimate: { requests: 1n },
              idempotencyKey: undefined,
              ttlSeconds: 60,
            },
            now,
          ),
        ]),
      ),
    );
    for (const [i, org] of orgs.entries()) {
      const [usage, next] = results[i]! as [UsageResult, Hold];
      const money = await moneyOf(db, org.id);
      expect(money.held).toBe(money.live);
      expect(money.held).toBe(perRequestNano);
      // $1.00, less the usage charged in full, less the new hold: the expired hold came back once.
      expect(money.credits).toBe(1_000_000_000n - 100n * perRequestNano - perRequestNano);
      expect(usage.holdOutcome).toBe("already_closed");
      expect(next.status).toBe("active");
      const [hold] = await db.sql<{ status: string }[]>`select status from holds where id = ${holds[i]!.id}`;
      expect(hold!.status).toBe("expired");
    }
    expect(await expireHolds(contextAt(db.sql, clock()))).toBe(0);
  });

  it("a replayed authorization answers with the hold as it is now, and never makes another", async ({ app, db }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "1.00");
    const body = {
      org_id: org.id,
      product: "api",
      estimate: { requests: 10 },
      idempotency_key: "once",
      ttl_seconds: 30,
    };
    const authorize = (b: Record<string, unknown>) =>
      app.call("POST", "/v1/billing/authorize", { key: org.gatewayKey, body: b });
    const first = await authorize(body);
    expect(first.status).toBe(201);
    expect(first.json).toMatchObject({ status: "active", replayed: false });
    expect((await authorize(body)).json).toMatchObject({
      hold_id: first.json.hold_id,
      status: "active",
      replayed: true,
    });

    await app.call("POST", "/v1/billing/usage", {
      key: org.gatewayKey,
      body: {
        events: [
          {
            idempotency_key: "u1",
            org_id: org.id,
            timestamp: clock().toISOString(),
            product: "api",
            quantities: { requests: 5 },
            hold_id: first.json.hold_id,
          },
        ],
      },
    });
    const settled = await authorize(body);
    expect(settled.status).toBe(200);
    expect(settled.json).toMatchObject({ hold_id: first.json.hold_id, status: "settled", replayed: true });

    const other = { ...body, idempotency_key: "expires" };
    const live = await authorize(other);
    clock.advance(31_000);
    const expired = await authorize(other);
    expect(expired.json).toMatchObject({ hold_id: live.json.hold_id, status: "expired", replayed: true });
    const money = await moneyOf(db, org.id);
    expect(money).toEqual({ credits: 1_000_000_000n - 5n * perRequestNano, held: 0n, live: 0n });
    const [count] = await db.sql<{ n: number }[]>`select count(*)::int as n from holds where org_id = ${org.id}`;
    expect(count!.n).toBe(2);
  });

  // The same authorization key with another payload is refused, whatever differs.
  it.for<Record<string, unknown>>([
    { estimate: { requests: 11 } },
    { ttl_seconds: 31 },
    { product: "llm", model: "zen-pro", estimate: { input_tokens: 10 } },
  ])("the same authorization key with %j changed is refused with 409", async (changed, { app }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "1.00");
    const body = { org_id: org.id, product: "api", estimate: { requests: 10 }, idempotency_key: "k", ttl_seconds: 30 };
    expect((await app.call("POST", "/v1/billing/authorize", { key: org.gatewayKey, body })).status).toBe(201);
    const res = await app.call("POST", "/v1/billing/authorize", { key: org.gatewayKey, body: { ...body, ...changed } });
    expect(res.status).toBe(409);
    expect(res.json.error).toMatchObject({ code: "idempotency_key_reused", type: "idempotency_error" });
  });

  it("the same authorization key with another estimate in one batch is refused, the first held", async ({
    app,
    db,
  }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "1.00");
    const body = { org_id: org.id, product: "api", estimate: { requests: 10 }, idempotency_key: "k", ttl_seconds: 30 };
    expect((await app.call("POST", "/v1/billing/authorize", { key: org.gatewayKey, body })).status).toBe(201);
    // In one batch: the second request with the key but another estimate is refused, the first held.
    const now = clock();
    const input = { orgId: org.id, product: "api", model: undefined, idempotencyKey: "batch", ttlSeconds: 30 };
    const [a, b] = await Promise.allSettled([
      app.metering.authorize({ ...input, estimate: { requests: 1n } }, now),
      app.metering.authorize({ ...input, estimate: { requests: 2n } }, now),
    ]);
    expect(a.status).toBe("fulfilled");
    expect(b.status === "rejected" && (b.reason as { code?: string }).code).toBe("idempotency_key_reused");
    expect((await moneyOf(db, org.id)).held).toBe(11n * perRequestNano);
  });

  it("a usage key reused for another event is refused for that event only, in one batch or across batches", async ({
    app,
    db,
  }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "1.00");
    const event = (quantity: number) => ({
      idempotency_key: "same",
      org_id: org.id,
      timestamp: clock().toISOString(),
      product: "api",
      quantities: { requests: quantity },
    });
    const res = await app.call("POST", "/v1/billing/usage", {
      key: org.gatewayKey,
      body: { events: [event(1), event(1), event(2)] },
    });
    expect(
      res.json.results.map((r: { status: string; error?: { code: string } }) => r.error?.code ?? r.status),
    ).toEqual(["recorded", "duplicate", "idempotency_key_reused"]);
    const later = await app.call("POST", "/v1/billing/usage", { key: org.gatewayKey, body: { events: [event(3)] } });
    expect(later.json.results[0].error.code).toBe("idempotency_key_reused");
    expect((await moneyOf(db, org.id)).credits).toBe(1_000_000_000n - perRequestNano);
  });
});

describe("money that expires while held: one outcome whatever the worker's timing", () => {
  // A $1.00 grant expiring in 3 s, a $0.60 hold before the expiry, $0.50 of usage settling it
  // after: the request is paid by the grant, the rest of the grant expires.
  it.for([
    { when: "expiry posted before", workerFirst: true, paid: "0" },
    { when: "expiry posted before", workerFirst: true, paid: "10" },
    { when: "settle before the expiry's posting", workerFirst: false, paid: "0" },
    { when: "settle before the expiry's posting", workerFirst: false, paid: "10" },
  ])("$when, with USD $paid of other credits", async ({ workerFirst, paid }, { db }) => {
    const clock = manualClock();
    const t = createTestApp({ sql: db.appSql, clock });
    const org = await t.createOrg();
    if (paid !== "0") await t.grant(org.id, paid);
    await t.grant(org.id, "1.00", `expiring-${Math.random()}`, {
      expires_at: new Date(clock().getTime() + 3_000).toISOString(),
    });
    clock.advance(1_000);
    const hold = await t.call("POST", "/v1/billing/authorize", {
      key: org.gatewayKey,
      body: { org_id: org.id, product: "api", estimate: { requests: 6_000 }, ttl_seconds: 60 },
    });
    expect(hold.status).toBe(201);
    clock.advance(3_000);
    if (workerFirst) await expireGrants(contextAt(db.sql, clock()));
    const settle = await t.call("POST", "/v1/billing/usage", {
      key: org.gatewayKey,
      body: {
        events: [
          {
            idempotency_key: "use",
            org_id: org.id,
            timestamp: clock().toISOString(),
            product: "api",
            quantities: { requests: 5_000 },
            hold_id: hold.json.hold_id,
          },
        ],
      },
    });
    expect(settle.json.results[0]).toMatchObject({ status: "recorded", hold_outcome: "released" });
    const expected = `${paid === "0" ? "0" : "10000000000"}`;
    expect((await t.call("GET", "/v1/billing/balance", { key: org.orgKey })).json).toMatchObject({
      credits_nano_usd: expected,
      held_nano_usd: "0",
    });
    await expireGrants(contextAt(db.sql, clock()));
    const money = await moneyOf(db, org.id);
    expect(money).toEqual({ credits: BigInt(expected), held: 0n, live: 0n });
  });

  // Usage reported without a hold after a grant expired is owed on top of the expiry, whether the
  // worker posted the expiry before it or after; and a hold past its time counts as given back
  // whether or not the sweep has closed it.
  it.for([
    { when: "expiry posted first", workerFirst: true },
    { when: "posted after", workerFirst: false },
  ])(
    "usage without a hold after the expiry, $when, and a lapsed hold not yet swept",
    async ({ workerFirst }, { db }) => {
      const clock = manualClock();
      const t = createTestApp({ sql: db.appSql, clock });
      const org = await t.createOrg();
      await t.grant(org.id, "1.00", `expiring-${Math.random()}`, {
        expires_at: new Date(clock().getTime() + 3_000).toISOString(),
      });
      const hold = await t.call("POST", "/v1/billing/authorize", {
        key: org.gatewayKey,
        body: { org_id: org.id, product: "api", estimate: { requests: 6_000 }, ttl_seconds: 2 },
      });
      expect(hold.status).toBe(201);
      clock.advance(4_000); // the hold is past its time (unswept), the grant expired
      const balance = async () => (await t.call("GET", "/v1/billing/balance", { key: org.orgKey })).json;
      expect(await balance()).toMatchObject({ balance_nano_usd: "0", credits_nano_usd: "0", held_nano_usd: "0" });
      if (workerFirst) await expireGrants(contextAt(db.sql, clock()));
      const used = await t.call("POST", "/v1/billing/usage", {
        key: org.gatewayKey,
        body: {
          events: [
            {
              idempotency_key: "unauthorized",
              org_id: org.id,
              timestamp: clock().toISOString(),
              product: "api",
              quantities: { requests: 5_000 },
            },
          ],
        },
      });
      expect(used.json.results[0].status).toBe("recorded");
      expect(await balance()).toMatchObject({
        balance_nano_usd: "-500000000",
        credits_nano_usd: "-500000000",
        held_nano_usd: "0",
      });
      await expireHolds(contextAt(db.sql, clock()));
      await expireGrants(contextAt(db.sql, clock()));
      expect(await moneyOf(db, org.id)).toEqual({ credits: -500_000_000n, held: 0n, live: 0n });
    },
  );
});
