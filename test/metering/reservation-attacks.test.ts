/**
 * Attacks on holds as reservations (migration 0037, src/db/functions/holds.sql): a hostile gateway
 * or a flaky network against the real stack (PostgreSQL, the app through HTTP, two app instances
 * with their own group commit on one database), and a compromised app role writing `holds`
 * directly. After every step: `held` is the sum of the org's active holds, the balance is grants
 * less recorded usage (nothing free, nothing charged twice), an org whose gateway reported only
 * honest settles never has its holds exceed its balance, and checkLedger finds nothing.
 */
import fc from "fast-check";
import { beforeEach, describe, expect } from "vitest";
import { expireGrants } from "../../src/billing/grants.js";
import { expireHolds } from "../../src/billing/holds.js";
import { createTestApp, manualClock, type TestApp } from "../support/app.js";
import { contextAt } from "../support/context.js";
import type { TestDatabase } from "../support/database.js";
import { type AppContext, appTest as it } from "../support/fixtures.js";
import { expectLedgerConsistent } from "../support/ledger.js";

// The "api" product costs $0.0001 (100,000 nano-USD) a request.
const PER_REQUEST = 100_000n;

const clock = manualClock();

type Org = { id: string; orgKey: string; gatewayKey: string };

/** POST /v1/billing/authorize of `requests` of the "api" product, as the org's gateway. */
const authorizeApi = (app: TestApp, org: { id: string; gatewayKey: string }, requests: number, ttlSeconds: number) =>
  app.call("POST", "/v1/billing/authorize", {
    key: org.gatewayKey,
    body: { org_id: org.id, product: "api", estimate: { requests }, ttl_seconds: ttlSeconds },
  });

/** The org's money as the database has it: the credits account, its reservation, live holds, recorded usage. */
async function moneyOf(db: TestDatabase, orgId: string) {
  const [row] = await db.sql<
    {
      balance: bigint;
      held: bigint;
      live: bigint;
      unlapsed: bigint;
      used: bigint;
      events: number;
      taken: bigint;
      expired: bigint;
    }[]
  >`
    select c.balance, c.held,
      (select coalesce(sum(amount), 0)::bigint from holds where org_id = ${orgId} and status = 'active') as live,
      (select coalesce(sum(amount), 0)::bigint from holds
       where org_id = ${orgId} and status = 'active' and expires_at > ${clock()}) as unlapsed,
      (select coalesce(sum(cost), 0)::bigint from usage_events where org_id = ${orgId}) as used,
      (select count(*)::int from usage_events where org_id = ${orgId}) as events,
      grant_expiry_taken(${orgId}, ${clock()}) as taken,
      (select coalesce(sum(expired_amount), 0)::bigint from credit_grants where org_id = ${orgId}) as expired
    from ledger_accounts c where c.id = 'org:' || ${orgId} || ':credits'`;
  return row!;
}

async function balanceOf(app: TestApp, org: Org) {
  const res = await app.call("GET", "/v1/billing/balance", { key: org.orgKey });
  expect(res.status).toBe(200);
  return {
    balance: BigInt(res.json.balance_nano_usd),
    held: BigInt(res.json.held_nano_usd),
    credits: BigInt(res.json.credits_nano_usd),
  };
}

/** Every hold's life is one of the three allowed, and ends consistently with its time. */
async function expectHoldsCoherent(db: TestDatabase, orgIds: string[]) {
  const bad = await db.sql<{ id: string; status: string }[]>`
    select h.id, h.status from holds h
    where h.org_id = any(${orgIds})
      and not (
        (h.status = 'active' and h.closed_at is null)
        or (h.status = 'expired' and h.closed_at >= h.expires_at)
        or (h.status = 'settled' and h.closed_at < h.expires_at
            and exists (select 1 from usage_events e where e.org_id = h.org_id and e.hold_id = h.id))
      )`;
  expect(bad).toEqual([]);
}

type Grants = Map<string, bigint>;
/** A request as first sent, kept for retries. */
type Sent = {
  kind: "auth" | "use";
  org: Org;
  /** Per usage event, its org. */
  eventOrgs: Org[];
  req: number;
  hold: { id: string; org: string; amount: bigint } | undefined;
  body: Record<string, unknown>;
};

/** The invariants the brief names, for each org; `honest` orgs reported only usage within live holds. */
async function expectInvariants(
  db: TestDatabase,
  app: TestApp,
  orgs: Org[],
  granted: Grants,
  honest: Set<string>,
  reportedCost: Map<string, bigint>,
) {
  for (const org of orgs) {
    const m = await moneyOf(db, org.id);
    // The reservation is exactly the org's active holds.
    expect(m.held, `held of ${org.id}`).toBe(m.live);
    // No free money, nothing charged twice: the balance is what was granted less recorded usage,
    // and recorded usage is what the API answered as recorded (duplicates charge nothing).
    // (less the expiries of grants the worker posted).
    expect(m.balance, `balance of ${org.id}`).toBe(granted.get(org.id)! - m.used - m.expired);
    expect(m.used, `usage of ${org.id}`).toBe(reportedCost.get(org.id) ?? 0n);
    // The API says the same, counting holds past their expiry (not swept yet) as given back.
    const b = await balanceOf(app, org);
    // and grants past their expiry as gone (shownBalance).
    expect(b).toEqual({
      balance: m.balance - m.taken,
      held: m.unlapsed,
      credits: m.balance - m.unlapsed - m.taken,
    });
    // Authorizations never reserve more than the balance, unless the gateway itself overran:
    // what is spendable (less live holds and what expired grants take) is never negative.
    if (honest.has(org.id)) expect(b.credits >= 0n, `credits ${b.credits} < 0 for an honest gateway`).toBe(true);
  }
  await expectHoldsCoherent(
    db,
    orgs.map((o) => o.id),
  );
  // An expiring grant is consumed only by usage it could pay for: recorded while it was live, or
  // settling a hold taken while it was live; a posted expiry takes exactly what was left.
  const overdrawn = await db.sql<{ id: string }[]>`
    select g.id from credit_grants g
    where g.org_id = any(${orgs.map((o) => o.id)}) and g.expires_at is not null
      and (g.consumed > (select coalesce(sum(e.cost), 0) from usage_events e left join holds h on h.id = e.hold_id
                         where e.org_id = g.org_id
                           and ((e.recorded_at >= g.created_at and e.recorded_at < g.expires_at)
                                or (h.created_at >= g.created_at and h.created_at < g.expires_at)))
           or (g.expired_at is not null and g.expired_amount <> g.amount - g.consumed))`;
  expect(overdrawn).toEqual([]);
  await expectLedgerConsistent(db.sql);
}

type Auth = { k: "auth"; org: number; req: number; ttl: number; key: string | null; inst: number };
type Use = {
  k: "use";
  org: number;
  hold: number | null;
  req: number;
  key: string;
  twice: boolean;
  /** With `twice`: the second event is another org's, naming the same hold, in the same report. */
  mix: boolean;
  inst: number;
};
type Sweep = { k: "sweep" };
type PostExpiries = { k: "expireGrants" };
/** A flaky network: an earlier request sent again, as it was, to either instance. */
type Retry = { k: "retry"; n: number; inst: number };
type Act = Auth | Use | Sweep | PostExpiries | Retry;
type Step = { advance: number; acts: Act[] };

const ORGS = 3;
const actArb: fc.Arbitrary<Act> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      k: fc.constant("auth" as const),
      org: fc.integer({ min: 0, max: ORGS - 1 }),
      req: fc.constantFrom(0, 1, 10, 40, 100, 250),
      ttl: fc.constantFrom(1, 2, 3),
      key: fc.option(fc.constantFrom("a0", "a1", "a2"), { freq: 2 }),
      inst: fc.integer({ min: 0, max: 1 }),
    }),
  },
  {
    weight: 4,
    arbitrary: fc.record({
      k: fc.constant("use" as const),
      org: fc.integer({ min: 0, max: ORGS - 1 }),
      hold: fc.option(fc.nat(40), { freq: 5 }),
      req: fc.constantFrom(0, 1, 10, 40, 100),
      key: fc.constantFrom("u0", "u1", "u2", "u3", "u4", "u5", "u6", "u7", "u8", "u9"),
      twice: fc.boolean(),
      mix: fc.boolean(),
      inst: fc.integer({ min: 0, max: 1 }),
    }),
  },
  { weight: 1, arbitrary: fc.constant({ k: "sweep" as const }) },
  { weight: 1, arbitrary: fc.constant({ k: "expireGrants" as const }) },
  {
    weight: 2,
    arbitrary: fc.record({ k: fc.constant("retry" as const), n: fc.nat(30), inst: fc.integer({ min: 0, max: 1 }) }),
  },
);
const auth = (org: number, req: number, ttl: number, key: string | null, inst = 0): Auth => ({
  k: "auth",
  org,
  req,
  ttl,
  key,
  inst,
});
const use = (org: number, hold: number | null, req: number, key: string, inst = 0): Use => ({
  k: "use",
  org,
  hold,
  req,
  key,
  twice: false,
  mix: false,
  inst,
});
const retry = (n: number, inst = 0): Retry => ({ k: "retry", n, inst });
/** Run first: one sequence that reaches every outcome, so that each is attacked whatever is generated. */
const everyOutcome: [Step[], string[], (number | null)[]] = [
  [
    { advance: 0, acts: [auth(0, 10, 1, "a0")] },
    { advance: 0, acts: [auth(1, 10, 3, "a1", 1)] },
    { advance: 0, acts: [retry(1)] }, // 200 active
    { advance: 0, acts: [use(1, 1, 5, "u0")] }, // released
    { advance: 0, acts: [retry(1, 1), retry(2)] }, // 200 settled, duplicate naming a hold
    { advance: 1_000, acts: [retry(0)] }, // 200 expired
    { advance: 0, acts: [use(0, 0, 1, "u1")] }, // already_closed
    { advance: 0, acts: [use(2, null, 1, "u2"), use(2, 0, 1, "u3")] }, // no hold, hold_not_found
    { advance: 0, acts: [use(1, null, 7, "u0"), auth(1, 11, 3, "a1"), auth(2, 250, 1, null)] }, // reused, 409, 402
    { advance: 0, acts: [auth(2, 1, 1, null)] },
    { advance: 2_000, acts: [{ k: "sweep" }] }, // sweep expired
  ],
  ["0.01", "0.01", "0.005"],
  [null, null, null],
];
const stepsArb: fc.Arbitrary<Step[]> = fc.array(
  fc.record({
    advance: fc.constantFrom(0, 0, 500, 999, 1000, 1001, 2000),
    acts: fc.array(actArb, { minLength: 1, maxLength: 8 }),
  }),
  { minLength: 1, maxLength: 8 },
);

describe("holds as reservations, attacked through HTTP", () => {
  it.scoped({ dbOptions: { max: 10 }, appOptions: { clock } });
  beforeEach<AppContext>(async ({ app }) => {
    await app.metering.ready();
  });

  it("generated races of authorizations, settles, replays, other orgs' holds, expiries and sweeps keep the reservation exact", async ({
    app,
    db,
  }) => {
    // A second API instance: its own group commit, the same database, and a clock 700 ms behind
    // (replicas' clocks disagree: its holds expire later, its batches see others' holds as live).
    const other = createTestApp({ sql: db.appSql, clock: () => new Date(clock().getTime() - 700) });
    await other.metering.ready();
    const instances = [app, other];
    let run = 0;
    // What the runs reached, so that a generator change cannot quietly stop attacking.
    const seen = new Set<string>();
    await fc.assert(
      fc.asyncProperty(
        stepsArb,
        fc.array(fc.constantFrom("0.005", "0.01", "0.03"), { minLength: ORGS, maxLength: ORGS }),
        // Per org, maybe a $0.01 grant expiring 1–3 s in: settles and expiries around its end.
        fc.array(fc.option(fc.constantFrom(1_000, 2_000, 3_000)), { minLength: ORGS, maxLength: ORGS }),
        async (steps, grants, expiring) => {
          run++;
          const orgs = await Promise.all(Array.from({ length: ORGS }, (_, i) => app.createOrg(`attack-${run}-${i}`)));
          const granted: Grants = new Map();
          for (const [i, org] of orgs.entries()) {
            await app.grant(org.id, grants[i]!);
            granted.set(org.id, BigInt(Math.round(Number(grants[i]!) * 1e9)));
            const ms = expiring[i];
            if (ms != null) {
              await app.grant(org.id, "0.01", `expiring-${run}-${i}`, {
                expires_at: new Date(clock().getTime() + ms).toISOString(),
              });
              granted.set(org.id, granted.get(org.id)! + 10_000_000n);
            }
          }
          const honest = new Set(orgs.map((o) => o.id));
          const reportedCost = new Map<string, bigint>();
          const holds: { id: string; org: string; amount: bigint }[] = [];
          const released = new Map<string, number>();
          let eventSerial = 0;
          const sent: Sent[] = [];

          const runAct = async (act: Act) => {
            if (act.k === "sweep") {
              if ((await expireHolds(contextAt(db.appSql, clock()))) > 0) seen.add("sweep expired");
              return;
            }
            if (act.k === "expireGrants") {
              await expireGrants(contextAt(db.appSql, clock()));
              return;
            }
            if (act.k === "retry") {
              if (sent.length === 0) return;
              await deliver(sent[act.n % sent.length]!, act.inst);
              return;
            }
            const org = orgs[act.org]!;
            if (act.k === "auth") {
              const request: Sent = {
                kind: "auth",
                org,
                eventOrgs: [],
                req: act.req,
                hold: undefined,
                body: {
                  org_id: org.id,
                  product: "api",
                  estimate: { requests: act.req },
                  ttl_seconds: act.ttl,
                  ...(act.key ? { idempotency_key: act.key } : {}),
                },
              };
              sent.push(request);
              await deliver(request, act.inst);
              return;
            }
            const hold = act.hold === null || holds.length === 0 ? undefined : holds[act.hold % holds.length];
            const timestamp = clock().toISOString();
            const event = (key: string, by = org) => ({
              idempotency_key: key,
              org_id: by.id,
              timestamp,
              product: "api",
              quantities: { requests: act.req },
              ...(hold ? { hold_id: hold.id } : {}),
            });
            // `twice`: the same hold named by two events of one report (two keys); reused keys
            // across steps replay or are refused as reused with another payload.
            const second = act.mix ? orgs[(act.org + 1) % ORGS]! : org;
            const events = act.twice
              ? [event(act.key), event(`${act.key}-${eventSerial++}`, second)]
              : [event(act.key)];
            const request: Sent = {
              kind: "use",
              org,
              eventOrgs: act.twice ? [org, second] : [org],
              req: act.req,
              hold,
              body: { events },
            };
            sent.push(request);
            await deliver(request, act.inst);
          };

          const deliver = async ({ kind, org: first, eventOrgs, req, hold, body }: Sent, instIndex: number) => {
            const org = first;
            const inst = instances[instIndex]!;
            if (kind === "auth") {
              const res = await inst.call("POST", "/v1/billing/authorize", { key: org.gatewayKey, body });
              expect([200, 201, 402, 409], res.text).toContain(res.status);
              seen.add(`authorize ${res.status}${res.status === 200 ? ` ${res.json.status}` : ""}`);
              if (res.status === 201) {
                expect(res.json.status).toBe("active");
                expect(BigInt(res.json.amount_nano_usd)).toBe(BigInt(req) * PER_REQUEST);
                holds.push({ id: res.json.hold_id, org: org.id, amount: BigInt(res.json.amount_nano_usd) });
              }
              if (res.status === 200) expect(res.json.replayed).toBe(true);
              if (res.status === 402) expect(res.json.error.code).toBe("insufficient_balance");
              if (res.status === 409) expect(res.json.error.code).toBe("idempotency_key_reused");
              return;
            }
            const res = await inst.call("POST", "/v1/billing/usage", { key: org.gatewayKey, body });
            expect(res.status, res.text).toBe(200);
            for (const r of res.json.results as {
              index: number;
              status: string;
              cost_nano_usd?: string;
              hold_outcome?: string | null;
              error?: { code: string };
            }[]) {
              const org = eventOrgs[r.index]!;
              seen.add(
                r.error?.code ??
                  (r.status === "duplicate"
                    ? `duplicate ${hold ? "naming a hold" : "no hold"}`
                    : `${r.status} ${r.hold_outcome ?? "no hold"}`),
              );
              if (r.status === "rejected") {
                expect(["idempotency_key_reused", "hold_not_found"]).toContain(r.error!.code);
                if (r.error!.code === "hold_not_found") expect(hold && hold.org !== org.id).toBe(true);
                continue;
              }
              if (hold && hold.org !== org.id && r.status === "recorded")
                throw new Error("usage settled another org's hold");
              if (r.status !== "recorded") continue;
              const cost = BigInt(r.cost_nano_usd!);
              expect(cost).toBe(BigInt(req) * PER_REQUEST);
              reportedCost.set(org.id, (reportedCost.get(org.id) ?? 0n) + cost);
              if (r.hold_outcome === "released") {
                released.set(hold!.id, (released.get(hold!.id) ?? 0) + 1);
                expect(released.get(hold!.id), `hold ${hold!.id} settled twice`).toBe(1);
                if (cost > hold!.amount) honest.delete(org.id);
              } else if (cost > 0n) {
                honest.delete(org.id); // charged without a live reservation
              }
            }
          };

          for (const step of steps) {
            clock.advance(step.advance);
            await Promise.all(step.acts.map(runAct));
            await expectInvariants(db, app, orgs, granted, honest, reportedCost);
          }
          // Finally everything expires, by the sweep, and nothing stays reserved.
          clock.advance(10_000);
          await Promise.all([expireHolds(contextAt(db.appSql, clock())), expireHolds(contextAt(db.appSql, clock()))]);
          for (const org of orgs) expect((await moneyOf(db, org.id)).held).toBe(0n);
          await expectInvariants(db, app, orgs, granted, honest, reportedCost);
        },
      ),
      { numRuns: Number(process.env.ATTACK_RUNS ?? 15), endOnFailure: true, examples: [everyOutcome] },
    );
    if (process.env.ATTACK_DEBUG) console.log([...seen].sort());
    for (const reached of [
      "authorize 201",
      "authorize 200 active",
      "authorize 402",
      "authorize 409",
      "recorded released",
      "recorded already_closed",
      "recorded no hold",
      "duplicate naming a hold",
      "authorize 200 settled",
      "authorize 200 expired",
      "sweep expired",
      "hold_not_found",
      "idempotency_key_reused",
    ])
      expect(seen, reached).toContain(reached);
  });

  it("concurrent authorizations on two instances never reserve more than the balance, whatever the sizes", async ({
    app,
    db,
  }) => {
    const other = createTestApp({ sql: db.appSql, clock });
    await other.metering.ready();
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.record({ req: fc.integer({ min: 0, max: 60 }), inst: fc.integer({ min: 0, max: 1 }) }), {
          minLength: 1,
          maxLength: 40,
        }),
        fc.integer({ min: 0, max: 30 }),
        async (reqs, grantCents) => {
          const org = await app.createOrg();
          const grant = BigInt(grantCents) * 10_000_000n;
          if (grantCents > 0) await app.grant(org.id, (grantCents / 100).toFixed(2));
          const results = await Promise.all(
            reqs.map(({ req, inst }) => authorizeApi([app, other][inst]!, org, req, 60)),
          );
          let reserved = 0n;
          const refused: bigint[] = [];
          for (const [k, res] of results.entries()) {
            const amount = BigInt(reqs[k]!.req) * PER_REQUEST;
            if (res.status === 201) reserved += amount;
            else {
              expect(res.status).toBe(402);
              refused.push(amount);
            }
          }
          const b = await balanceOf(app, org);
          expect(b.balance).toBe(grant);
          expect(b.held).toBe(reserved);
          expect(reserved <= grant).toBe(true);
          // Available only shrank while they raced: each refusal was more than what is left now.
          for (const r of refused) expect(r > b.credits).toBe(true);
        },
      ),
      { numRuns: 15, endOnFailure: true },
    );
    await expectLedgerConsistent(db.sql);
  });

  it.for([
    { after: 999, outcome: "released", charged: "hold" },
    { after: 1_000, outcome: "already_closed", charged: "full" },
    { after: 1_001, outcome: "already_closed", charged: "full" },
  ])("a 1 s hold settled $after ms later: $outcome", async ({ after, outcome }, { app, db }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "0.01");
    const hold = await authorizeApi(app, org, 50, 1);
    expect(hold.status).toBe(201);
    clock.advance(after);
    // The org authorizes at the same instant (its batch expires its holds first) and settles.
    const [next, used] = await Promise.all([
      authorizeApi(app, org, 60, 60),
      app.call("POST", "/v1/billing/usage", {
        key: org.gatewayKey,
        body: {
          events: [
            {
              idempotency_key: "boundary",
              org_id: org.id,
              timestamp: clock().toISOString(),
              product: "api",
              quantities: { requests: 40 },
              hold_id: hold.json.hold_id,
            },
          ],
        },
      }),
    ]);
    expect(used.json.results[0]).toMatchObject({ status: "recorded", hold_outcome: outcome });
    const m = await moneyOf(db, org.id);
    expect(m.balance).toBe(10_000_000n - 40n * PER_REQUEST);
    expect(m.held).toBe(m.live);
    // The next authorization (60 of the 100 requests) fits only in what is not reserved.
    if (next.status === 201) expect(m.held).toBe(60n * PER_REQUEST);
    else expect(next.status).toBe(402);
    expect(m.held <= m.balance).toBe(true);
    const [row] = await db.sql<{ status: string }[]>`select status from holds where id = ${hold.json.hold_id}`;
    expect(row!.status).toBe(outcome === "released" ? "settled" : "expired");
    await expectLedgerConsistent(db.sql);
  });

  it("zero-amount holds reserve nothing, settle and expire without moving anything", async ({ app, db }) => {
    const org = await app.createOrg();
    // No credits at all: a zero estimate is still authorized, as nothing is reserved.
    const zero = await authorizeApi(app, org, 0, 1);
    expect(zero.status).toBe(201);
    expect(zero.json.amount_nano_usd).toBe("0");
    const again = await authorizeApi(app, org, 0, 1);
    expect((await moneyOf(db, org.id)).held).toBe(0n);
    const used = await app.call("POST", "/v1/billing/usage", {
      key: org.gatewayKey,
      body: {
        events: [
          {
            idempotency_key: "free",
            org_id: org.id,
            timestamp: clock().toISOString(),
            product: "api",
            quantities: { requests: 0 },
            hold_id: zero.json.hold_id,
          },
        ],
      },
    });
    expect(used.json.results[0]).toMatchObject({ status: "recorded", hold_outcome: "released", cost_nano_usd: "0" });
    clock.advance(2_000);
    expect(await expireHolds(contextAt(db.appSql, clock()))).toBeGreaterThanOrEqual(1);
    const [row] = await db.sql<{ status: string }[]>`select status from holds where id = ${again.json.hold_id}`;
    expect(row!.status).toBe("expired");
    expect(await moneyOf(db, org.id)).toMatchObject({ balance: 0n, held: 0n, live: 0n, used: 0n });
    await expectLedgerConsistent(db.sql);
  });

  it("huge batches: 1,000 authorizations, then 1,000 events naming each hold twice, others' and unknown holds", async ({
    app,
    db,
  }) => {
    const [org, victim] = [await app.createOrg(), await app.createOrg()];
    await app.grant(org.id, "0.06"); // 600 holds of one request
    await app.grant(victim.id, "1.00");
    const victimHold = await authorizeApi(app, victim, 10, 60);
    expect(victimHold.status).toBe(201);
    const batch = await app.call("POST", "/v1/billing/authorize/batch", {
      key: org.gatewayKey,
      body: {
        requests: Array.from({ length: 1000 }, (_, i) => ({
          org_id: org.id,
          product: "api",
          estimate: { requests: 1 },
          ttl_seconds: 60,
          idempotency_key: `big-${i % 900}`, // 100 replays in the batch
        })),
      },
    });
    expect(batch.status, batch.text).toBe(200);
    const results = batch.json.results as { status: number; hold?: { hold_id: string }; error?: { code: string } }[];
    const holdIds = [...new Set(results.filter((r) => r.hold).map((r) => r.hold!.hold_id))];
    expect(holdIds.length).toBe(600);
    expect(results.filter((r) => r.error?.code === "insufficient_balance").length).toBeGreaterThan(0);
    let m = await moneyOf(db, org.id);
    expect(m.held).toBe(600n * PER_REQUEST);
    expect(m.held).toBe(m.balance);

    const events = Array.from({ length: 1000 }, (_, i) => ({
      idempotency_key: `e-${i}`,
      org_id: org.id,
      timestamp: clock().toISOString(),
      product: "api",
      quantities: { requests: 1 },
      hold_id: i === 998 ? victimHold.json.hold_id : i === 999 ? "hold_doesnotexist" : holdIds[Math.floor(i / 2) % 600],
    }));
    const used = await app.call("POST", "/v1/billing/usage", { key: org.gatewayKey, body: { events } });
    expect(used.status).toBe(200);
    const outcomes = (used.json.results as { hold_outcome?: string; error?: { code: string } }[]).map(
      (r) => r.error?.code ?? r.hold_outcome,
    );
    expect(outcomes.filter((o) => o === "released").length).toBe(499);
    expect(outcomes.filter((o) => o === "already_closed").length).toBe(499);
    expect(outcomes.slice(998)).toEqual(["hold_not_found", "hold_not_found"]);
    m = await moneyOf(db, org.id);
    expect(m.used).toBe(998n * PER_REQUEST);
    expect(m.balance).toBe(60_000_000n - 998n * PER_REQUEST);
    expect(m.held).toBe(m.live);
    expect(m.held).toBe(101n * PER_REQUEST);
    const v = await moneyOf(db, victim.id);
    expect(v).toMatchObject({ balance: 1_000_000_000n, held: 10n * PER_REQUEST, used: 0n });
    await expectLedgerConsistent(db.sql);
  });
});

describe("one idempotency key, three payloads, one batch", () => {
  it.scoped({ dbOptions: { max: 10 }, appOptions: { clock } });

  // The third request's `prev` is the second, which was refused as reused: it must still be
  // answered by the first's hold, never held again under the same key.
  it.for([
    // Once a break (contract, no money): the third was decided afresh (its prev, the second, was
    // not held) and answered 402 insufficient_balance for a key already used for another payload;
    // with enough credits only the unique key (the batch refused, then retried one by one) kept it
    // from a second hold. It is now compared with the payload the key's hold was taken for.
    { grant: "0.01", estimates: [5, 100, 100], statuses: [201, 409, 409], held: 5n },
    { grant: "1.00", estimates: [5, 100, 100], statuses: [201, 409, 409], held: 5n },
    { grant: "1.00", estimates: [5, 100, 5], statuses: [201, 409, 200], held: 5n },
    { grant: "0.01", estimates: [5000, 5, 5, 100], statuses: [402, 201, 200, 409], held: 5n },
  ])("$grant USD, estimates $estimates answer $statuses", async ({ grant, estimates, statuses, held }, { app, db }) => {
    const org = await app.createOrg();
    await app.grant(org.id, grant);
    const res = await app.call("POST", "/v1/billing/authorize/batch", {
      key: org.gatewayKey,
      body: {
        requests: estimates.map((requests) => ({
          org_id: org.id,
          product: "api",
          estimate: { requests },
          ttl_seconds: 60,
          idempotency_key: "same",
        })),
      },
    });
    expect(res.status).toBe(200);
    expect(res.json.results.map((r: { status: number }) => r.status)).toEqual(statuses);
    const m = await moneyOf(db, org.id);
    expect(m.held).toBe(held * PER_REQUEST);
    expect(m.held).toBe(m.live);
    const [n] = await db.sql<{ n: number }[]>`select count(*)::int as n from holds where org_id = ${org.id}`;
    expect(n!.n).toBe(1);
    await expectLedgerConsistent(db.sql);
  });
});

describe("absurd amounts", () => {
  it.scoped({ dbOptions: { max: 10 }, appOptions: { clock } });

  it("an estimate or usage beyond the ledger's bigint reserves and charges nothing, and settles no hold", async ({
    app,
    db,
  }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "1.00");
    const huge = Number.MAX_SAFE_INTEGER; // × 100,000 nano-USD: past a bigint
    const absurd = await authorizeApi(app, org, huge, 60);
    expect(absurd.status).toBeGreaterThanOrEqual(400);
    expect(absurd.status).toBeLessThan(500);
    const hold = await authorizeApi(app, org, 10, 60);
    expect(hold.status).toBe(201);
    const used = await app.call("POST", "/v1/billing/usage", {
      key: org.gatewayKey,
      body: {
        events: [huge, 10_000_000_000_000, 5].map((requests, i) => ({
          idempotency_key: `absurd-${i}`,
          org_id: org.id,
          timestamp: clock().toISOString(),
          product: "api",
          quantities: { requests },
          hold_id: hold.json.hold_id,
        })),
      },
    });
    expect(used.status).toBeLessThan(500);
    const m = await moneyOf(db, org.id);
    expect(m.held).toBe(m.live);
    expect(m.balance).toBe(1_000_000_000n - m.used);
    if (used.status === 200) {
      const codes = used.json.results.map(
        (r: { error?: { code: string }; hold_outcome?: string }) => r.error?.code ?? r.hold_outcome,
      );
      // Only the sane event may settle the hold; the absurd ones are refused before it.
      expect(codes.filter((c: string) => c === "released").length).toBeLessThanOrEqual(1);
      expect(codes[2]).toBe("released");
    }
    await expectLedgerConsistent(db.sql);
  });
});

describe("the app's database role against the reservation", () => {
  it.scoped({ dbOptions: { max: 10 }, appOptions: { clock } });

  it("cannot write held itself", async ({ app, db }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "1.00");
    await authorizeApi(app, org, 10, 60);
    const account = `org:${org.id}:credits`;
    await expect(db.appSql`update ledger_accounts set held = 0 where id = ${account}`).rejects.toThrow();
    await expect(db.appSql`update ledger_accounts set held = held + 1 where id = ${account}`).rejects.toThrow();
    await expect(db.appSql`delete from holds where org_id = ${org.id}`).rejects.toThrow();
    await expect(db.appSql`update holds set amount = -1 where org_id = ${org.id}`).rejects.toThrow();
    expect(await moneyOf(db, org.id)).toMatchObject({ held: 10n * PER_REQUEST, live: 10n * PER_REQUEST });
    await expectLedgerConsistent(db.sql);
  });

  // What the app role's UPDATE on holds may do: close an active hold, once. Its terms (amount, org,
  // dates) are fixed (holds_terms_fixed in src/db/functions/holds.sql), and a closed hold stays closed.
  it("cannot shrink a hold, move it to another org, back-date it, or re-open a closed one", async ({ app, db }) => {
    const [org, victim] = [await app.createOrg(), await app.createOrg()];
    await app.grant(org.id, "0.01");
    await app.grant(victim.id, "0.01");
    const hold = await authorizeApi(app, org, 100, 60);
    expect(hold.status).toBe(201);
    const id = hold.json.hold_id as string;
    const refused = /only its closing may change/;
    await expect(db.appSql`update holds set amount = 0 where id = ${id}`).rejects.toThrow(refused);
    await expect(db.appSql`update holds set org_id = ${victim.id} where id = ${id}`).rejects.toThrow(refused);
    await expect(
      db.appSql`update holds set created_at = ${new Date(clock().getTime() - 3_000)} where id = ${id}`,
    ).rejects.toThrow(refused);
    await expect(
      db.appSql`update holds set expires_at = ${new Date(clock().getTime() + 3_600_000)} where id = ${id}`,
    ).rejects.toThrow(refused);
    expect(await moneyOf(db, org.id)).toMatchObject({ balance: 10_000_000n, held: 10_000_000n });
    expect(await moneyOf(db, victim.id)).toMatchObject({ balance: 10_000_000n, held: 0n });
    clock.advance(120_000);
    await expireHolds(contextAt(db.appSql, clock()));
    await expect(db.appSql`update holds set status = 'active', closed_at = null where id = ${id}`).rejects.toThrow(
      refused,
    );
    expect(await moneyOf(db, org.id)).toMatchObject({ balance: 10_000_000n, held: 0n });
    await expectLedgerConsistent(db.sql);
  });

  // Once a break (app role): a hold's created_at decides which grants its settle is charged to
  // (money_rules.sql). Back-dating a hold taken after an expiring grant expired charged the usage to
  // that expired grant, so the grant's expiry posted nothing: the org kept money that expired. The
  // back-dating is now refused, and the outcome is the honest one either way.
  it.for([
    { name: "the hold as the API wrote it", forge: false },
    { name: "an attempt to back-date it into the expired grant's life, refused", forge: true },
  ])("a hold taken after a grant expired, settled: $name", async ({ forge }, { db }) => {
    const c = manualClock();
    const t = createTestApp({ sql: db.appSql, clock: c });
    const org = await t.createOrg();
    await t.grant(org.id, "10.00");
    await t.grant(org.id, "1.00", `expiring-${Math.random()}`, {
      expires_at: new Date(c().getTime() + 3_000).toISOString(),
    });
    c.advance(4_000); // the $1.00 grant has expired (its expiry not posted yet)
    const hold = await authorizeApi(t, org, 10_000, 60);
    expect(hold.status).toBe(201);
    if (forge)
      await expect(
        db.appSql`update holds set created_at = ${new Date(c().getTime() - 3_000)} where id = ${hold.json.hold_id}`,
      ).rejects.toThrow(/only its closing may change/);
    const used = await t.call("POST", "/v1/billing/usage", {
      key: org.gatewayKey,
      body: {
        events: [
          {
            idempotency_key: "late",
            org_id: org.id,
            timestamp: c().toISOString(),
            product: "api",
            quantities: { requests: 10_000 },
            hold_id: hold.json.hold_id,
          },
        ],
      },
    });
    expect(used.json.results[0]).toMatchObject({ status: "recorded", hold_outcome: "released" });
    await expireGrants(contextAt(db.appSql, c()));
    await expectLedgerConsistent(db.sql);
    // $10 + $1 - $1 expired - $1 of usage = $9 (back-dated, the $1.00 of usage was charged to the
    // expired grant, its expiry posted $0, and the org kept $10).
    const [g] = await db.sql<{ consumed: bigint; expired_amount: bigint | null }[]>`
      select consumed, expired_amount from credit_grants where org_id = ${org.id} and expires_at is not null`;
    expect(g).toEqual({ consumed: 0n, expired_amount: 1_000_000_000n });
    expect((await moneyOf(db, org.id)).balance).toBe(9_000_000_000n);
  });

  // For comparison: the same money through credit_grants, which the app role may also update
  // (consumed), needs no hold at all; the role is trusted with grants by design (it posts them).
  it("can mark an expiring grant consumed directly, with the same effect as the back-dated hold", async ({ db }) => {
    const c = manualClock();
    const t = createTestApp({ sql: db.appSql, clock: c });
    const org = await t.createOrg();
    await t.grant(org.id, "10.00");
    await t.grant(org.id, "1.00", `expiring-${Math.random()}`, {
      expires_at: new Date(c().getTime() + 3_000).toISOString(),
    });
    await db.appSql`update credit_grants set consumed = amount where org_id = ${org.id} and expires_at is not null`;
    c.advance(4_000);
    await expireGrants(contextAt(db.appSql, c()));
    await expectLedgerConsistent(db.sql);
    expect((await moneyOf(db, org.id)).balance).toBe(11_000_000_000n); // the expiring $1.00 is kept
  });
});
