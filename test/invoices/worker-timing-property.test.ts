/**
 * Property: the outcome of billing never depends on WHEN the workers close due cycles, as long as
 * each close happens before the next cycle ends (README, "When the workers close a cycle does not
 * change it"). worker-timing.test.ts checks fixed stories; this generates them.
 *
 * A scenario is an org (a random billing_anchor_day), an initial paid-like grant and up to 14
 * actions over three cycles (subscribe / change plan / cancel / re-subscribe, usage, short holds,
 * an early close, operator adjustments and grants), many placed within seconds after (or before)
 * a cycle boundary. It runs twice, on two fresh orgs:
 *   - on time: due cycles are closed exactly at every boundary (and before every action);
 *   - late: each boundary's close runs only after a generated delay (seconds to 27 days, always
 *     before the next boundary), so actions can land between a cycle's end and its close.
 * Both then close at the same final instant and are compared: each action's answer, every
 * invoice (period, lines, subtotal, credits applied, amount due, status), the plan grants
 * (amount, expiry, reason), the subscription and the balance. The ledger must stay consistent.
 *
 * Not compared (they legitimately differ with the close's timing): ids, invoice numbers (one
 * counter for all orgs), issued_at / paid_at, and the counts in the close endpoint's answer
 * (`invoices_created` of an early close also counts the ended cycles it had to close first).
 *
 * What it found (each shrunk and replayed; `counterexamples` below, each failed before the fix):
 * subscription changes and early closes passed, but what happened in the window between a
 * boundary and its close changed the outcome: the new cycle's included credits existed only from
 * the close (usage in the window was paid from the org's own credits while they later expired
 * unused; authorizations in the window were refused), and an adjustment queued in the window
 * landed on the ended cycle's invoice. Now the metering path grants the cycle's included credits
 * before its first request (src/billing/cycle-credits.ts), the close does not spend them for the
 * cycle before, and takes only the adjustments queued before the cycle ended (close-cycle.ts).
 *
 * Limits, left out by `windowMoney`: the close settles with the credits and holds as they are
 * when it runs, so a grant, a top-up, usage beyond the new cycle's included credits, or a hold
 * (taken, settled or lapsing) between a boundary and its close can change whether the ended
 * cycle's charges are paid from credits or left due (what the org has and owes adds up the same).
 * The fixed counterexamples below keep window usage within the included credits. Settling as of the boundary instead was tried and
 * attacked: reconstructing the balance, reservations and pending expiries at the boundary from
 * what moved since broke in five other ways (holds settled or swept since, a top-up paying an
 * older invoice, cycles closed together, grants expiring since), and holds closed since cannot be
 * found without a new index on a hot table. An authorization in the window is also decided against
 * the balance before the close's charges and credits, which the close cannot undo.
 *
 * MODEL_RUNS / MODEL_SEED (test/model/settings.ts) set the runs and seed; TIMING_EXCLUDE
 * (comma-separated action kinds, e.g. "usage,hold,adjust") leaves kinds out, to look past a
 * known break; TIMING_SCENARIO='<json>' replays one scenario, traced; TIMING_IGNORE_ANSWERS=1 compares the outcome without the actions' answers.
 */
import fc from "fast-check";
import { describe, expect } from "vitest";
import { expireGrants } from "../../src/billing/grants.js";
import { expireHolds } from "../../src/billing/holds.js";
import { cycleContaining } from "../../src/billing/periods.js";
import { modelSettings } from "../model/settings.js";
import { manualClock, TEST_ADMIN_KEY, type TestApp } from "../support/app.js";
import { contextAt } from "../support/context.js";
import { appTest as it } from "../support/fixtures.js";
import type { TestDatabase } from "../support/database.js";
import { expectLedgerConsistent } from "../support/ledger.js";

const SECOND = 1000;
const DAY = 86_400_000;
const T0 = new Date("2026-10-05T10:00:00Z");
const clock = manualClock(T0);
const { runs, seed, path } = modelSettings(25);
const excluded = new Set((process.env.TIMING_EXCLUDE ?? "").split(",").filter(Boolean));

type Plan = "free" | "pro" | "team";
type Action =
  | { kind: "subscribe"; plan: Plan }
  | { kind: "cancel" }
  | { kind: "usage"; cents: number }
  | { kind: "hold"; cents: number; ttl: number }
  | { kind: "endNow" }
  | { kind: "adjust"; cents: number }
  | { kind: "grant"; cents: number };
/** Where an action happens: in cycle 0..2, `after` its start, `before` its end (seconds), or `any` fraction of it (ppm). */
type When = { cycle: 0 | 1 | 2; at: "after" | "before" | "any"; n: number };
type Scenario = {
  anchor: number;
  initialCents: number;
  sweep: boolean;
  steps: { when: When; action: Action }[];
  /** The late run's delay after each of the three boundaries, in seconds. */
  delays: [number, number, number];
};

type Kind = Action["kind"];
const ALL_KINDS: Kind[] = ["subscribe", "cancel", "usage", "hold", "endNow", "adjust", "grant"];
/** The actions of these kinds, weighted (subscription changes most often). */
function actionOf(kinds: Kind[]): fc.Arbitrary<Action> {
  const all: Record<Kind, { weight: number; arbitrary: fc.Arbitrary<Action> }> = {
    subscribe: {
      weight: 4,
      arbitrary: fc.record({
        kind: fc.constant("subscribe" as const),
        plan: fc.constantFrom<Plan>("free", "pro", "team"),
      }),
    },
    cancel: { weight: 2, arbitrary: fc.record({ kind: fc.constant("cancel" as const) }) },
    usage: {
      weight: 3,
      arbitrary: fc.record({ kind: fc.constant("usage" as const), cents: fc.integer({ min: 1, max: 30_000 }) }),
    },
    hold: {
      weight: 2,
      arbitrary: fc.record({
        kind: fc.constant("hold" as const),
        cents: fc.integer({ min: 1, max: 30_000 }),
        ttl: fc.integer({ min: 1, max: 300 }),
      }),
    },
    endNow: { weight: 1, arbitrary: fc.record({ kind: fc.constant("endNow" as const) }) },
    adjust: {
      weight: 1,
      arbitrary: fc.record({
        kind: fc.constant("adjust" as const),
        cents: fc.integer({ min: -10_000, max: 10_000 }).filter((c) => c !== 0),
      }),
    },
    grant: {
      weight: 1,
      arbitrary: fc.record({ kind: fc.constant("grant" as const), cents: fc.integer({ min: 1, max: 30_000 }) }),
    },
  };
  return fc.oneof(...kinds.map((k) => all[k]));
}

const when: fc.Arbitrary<When> = fc.oneof(
  // The dangerous window: seconds after a boundary (0 = at it), or just before one.
  {
    weight: 3,
    arbitrary: fc.record({
      cycle: fc.constantFrom<0 | 1 | 2>(1, 2),
      at: fc.constant("after" as const),
      n: fc.integer({ min: 0, max: 600 }),
    }),
  },
  {
    weight: 1,
    arbitrary: fc.record({
      cycle: fc.constantFrom<0 | 1 | 2>(0, 1, 2),
      at: fc.constant("before" as const),
      n: fc.integer({ min: 1, max: 600 }),
    }),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      cycle: fc.constantFrom<0 | 1 | 2>(0, 1, 2),
      at: fc.constant("any" as const),
      n: fc.integer({ min: 0, max: 999_999 }),
    }),
  },
);

const delay = fc.oneof(fc.integer({ min: 1, max: 600 }), fc.integer({ min: 600, max: 27 * 86_400 }));

const scenarioOf = (kinds: Kind[]): fc.Arbitrary<Scenario> =>
  fc.record({
    anchor: fc.integer({ min: 1, max: 28 }),
    initialCents: fc.oneof(
      fc.constant(0),
      fc.integer({ min: 1, max: 5_000 }),
      fc.integer({ min: 5_000, max: 100_000 }),
    ),
    sweep: fc.boolean(),
    steps: fc.array(fc.record({ when, action: actionOf(kinds) }), { minLength: 1, maxLength: 14 }),
    delays: fc.tuple(delay, delay, delay),
  });

const usd = (cents: number) =>
  `${cents < 0 ? "-" : ""}${Math.floor(Math.abs(cents) / 100)}.${String(Math.abs(cents) % 100).padStart(2, "0")}`;

/** The boundaries B1..B3 after the org's creation at T0. */
function boundaries(anchor: number): [Date, Date, Date] {
  const b1 = cycleContaining(T0, anchor).end;
  const b2 = cycleContaining(b1, anchor).end;
  const b3 = cycleContaining(b2, anchor).end;
  return [b1, b2, b3];
}

function instant(w: When, anchor: number): number {
  const [b1, b2, b3] = boundaries(anchor).map((d) => d.getTime()) as [number, number, number];
  const start = [T0.getTime() + 60 * SECOND, b1, b2][w.cycle] as number;
  const end = [b1, b2, b3][w.cycle] as number;
  if (w.at === "after") return Math.min(start + w.n * SECOND, end - SECOND);
  if (w.at === "before") return Math.max(end - w.n * SECOND, start);
  return Math.min(start + Math.floor(((end - start) * w.n) / 1_000_000 / SECOND) * SECOND, end - SECOND);
}

type Org = { id: string; orgKey: string };
type Step = { t: number; kind: "close" } | { t: number; kind: "action"; action: Action; index: number };

let gatewayKey: string | undefined;
let orgCount = 0;

async function runVariant(app: TestApp, db: TestDatabase, s: Scenario, late: boolean) {
  const [b1, b2, b3] = boundaries(s.anchor).map((d) => d.getTime()) as [number, number, number];
  clock.set(T0);
  if (!gatewayKey) {
    const g = await app.call("POST", "/v1/admin/keys", {
      key: TEST_ADMIN_KEY,
      body: { scope: "gateway", name: "timing" },
    });
    gatewayKey = g.json.key as string;
  }
  const name = `timing ${++orgCount} ${late ? "late" : "on time"}`;
  const created = await app.call("POST", "/v1/admin/orgs", {
    key: TEST_ADMIN_KEY,
    body: { name, billing_anchor_day: s.anchor },
  });
  if (created.status !== 201) throw new Error(`create org: ${created.text}`);
  const id = created.json.id as string;
  const key = await app.call("POST", `/v1/admin/orgs/${id}/keys`, { key: TEST_ADMIN_KEY, body: { scope: "org" } });
  const org: Org = { id, orgKey: key.json.key as string };
  if (s.initialCents > 0) await app.grant(org.id, usd(s.initialCents), `initial-${id}`);

  const steps: Step[] = s.steps.map((st, index) => ({
    t: instant(st.when, s.anchor),
    kind: "action" as const,
    action: st.action,
    index,
  }));
  const closes = late
    ? [b1 + s.delays[0] * SECOND, b2 + s.delays[1] * SECOND, b3 + s.delays[2] * SECOND]
    : [b1, b2, b3];
  for (const t of closes) steps.push({ t, kind: "close" });
  // Ties: on time, the close comes first (it is at the boundary); late, the actions first.
  steps.sort(
    (x, y) =>
      x.t - y.t ||
      (x.kind === y.kind
        ? x.kind === "action" && y.kind === "action"
          ? x.index - y.index
          : 0
        : (x.kind === "close") === !late
          ? -1
          : 1),
  );
  const answers: unknown[] = new Array(s.steps.length);
  const story: string[] = [];
  const close = () => app.call("POST", "/v1/admin/cycles/close", { key: TEST_ADMIN_KEY, body: { org_id: org.id } });
  for (const step of steps) {
    clock.set(new Date(step.t));
    if (s.sweep) {
      await expireHolds(contextAt(db.sql, clock()));
      await expireGrants(contextAt(db.sql, clock()));
    }
    if (step.kind === "close") {
      const r = await close();
      story.push(`${clock().toISOString()} close -> ${r.json?.invoices_created}`);
      continue;
    }
    if (!late) await close(); // on time: nothing is ever due when an action runs
    const a = step.action;
    const i = step.index;
    let answer: unknown;
    switch (a.kind) {
      case "subscribe": {
        const r = await app.call("PUT", `/v1/admin/orgs/${org.id}/subscription`, {
          key: TEST_ADMIN_KEY,
          body: { plan_id: a.plan },
        });
        answer = { status: r.status, code: r.json?.error?.code, plan: r.json?.plan_id ?? r.json?.plan?.id };
        break;
      }
      case "cancel": {
        const r = await app.call("DELETE", `/v1/admin/orgs/${org.id}/subscription`, { key: TEST_ADMIN_KEY });
        answer = { status: r.status, code: r.json?.error?.code };
        break;
      }
      case "usage": {
        const r = await app.call("POST", "/v1/billing/usage", {
          key: gatewayKey,
          body: {
            events: [
              {
                idempotency_key: `u-${i}`,
                org_id: org.id,
                timestamp: clock().toISOString(),
                product: "api",
                quantities: { requests: a.cents * 100 }, // $0.0001 a request
              },
            ],
          },
        });
        answer = { status: r.status, event: r.json?.results?.[0]?.status, cost: r.json?.results?.[0]?.cost_nano_usd };
        break;
      }
      case "hold": {
        const r = await app.call("POST", "/v1/billing/authorize", {
          key: gatewayKey,
          body: {
            org_id: org.id,
            product: "api",
            estimate: { requests: a.cents * 100 },
            ttl_seconds: a.ttl,
            idempotency_key: `h-${i}`,
          },
        });
        answer = { status: r.status, code: r.json?.error?.code, amount: r.json?.amount_nano_usd };
        break;
      }
      case "endNow": {
        const r = await app.call("POST", "/v1/admin/cycles/close", {
          key: TEST_ADMIN_KEY,
          headers: { "idempotency-key": `end-${i}` },
          body: { org_id: org.id, end_current_cycle_now: true },
        });
        answer = { status: r.status }; // invoices_created also counts ended cycles closed first
        break;
      }
      case "adjust": {
        const r = await app.call("POST", `/v1/admin/orgs/${org.id}/adjustments`, {
          key: TEST_ADMIN_KEY,
          headers: { "idempotency-key": `adj-${i}` },
          body: { amount: usd(a.cents), description: `adjustment ${i}` },
        });
        answer = { status: r.status };
        break;
      }
      case "grant": {
        const r = await app.call("POST", `/v1/admin/orgs/${org.id}/credits`, {
          key: TEST_ADMIN_KEY,
          headers: { "idempotency-key": `g-${i}` },
          body: { amount: usd(a.cents), reason: `grant ${i}` },
        });
        answer = { status: r.status };
        break;
      }
    }
    answers[i] = answer;
    story.push(`${clock().toISOString()} #${i} ${JSON.stringify(a)} -> ${JSON.stringify(answer)}`);
  }
  // The same final instant for both, after every close: the end of the last cycle's successor, nearly.
  clock.set(new Date(b3 + 27 * DAY + 12 * 3_600_000));
  if (s.sweep) {
    await expireHolds(contextAt(db.sql, clock()));
    await expireGrants(contextAt(db.sql, clock()));
  }
  await close();
  // TIMING_IGNORE_ANSWERS=1 compares the outcome only (to look past a known difference in the answers).
  const shown = process.env.TIMING_IGNORE_ANSWERS ? {} : { answers };
  return { outcome: { ...shown, ...(await outcome(app, db, org)) }, story };
}

async function outcome(app: TestApp, db: TestDatabase, org: Org) {
  const list = await app.call("GET", "/v1/billing/invoices?limit=100", { key: org.orgKey });
  const invoices = [];
  for (const i of list.json.data) {
    const inv = (await app.call("GET", `/v1/billing/invoices/${i.id}`, { key: org.orgKey })).json;
    invoices.push({
      period: inv.period,
      status: inv.status,
      subtotal: inv.subtotal_nano_usd,
      credits_applied: inv.credits_applied_nano_usd,
      amount_due: inv.amount_due_nano_usd,
      lines: inv.lines.map((l: Record<string, unknown>) => ({
        kind: l.kind,
        description: l.description,
        amount: l.amount_nano_usd,
        quantities: l.quantities,
        period: l.period,
      })),
    });
  }
  invoices.sort((a, b) => a.period.start.localeCompare(b.period.start));
  const planGrants = (
    await db.sql<{ amount: string; expires_at: Date; reason: string }[]>`
      select amount::text, expires_at, reason from credit_grants where org_id = ${org.id} and source = 'plan'
      order by expires_at, amount`
  ).map((g) => ({ amount: g.amount, expires_at: g.expires_at.toISOString(), reason: g.reason }));
  const bal = (await app.call("GET", "/v1/billing/balance", { key: org.orgKey })).json;
  const balance = Object.fromEntries(Object.entries(bal).filter(([k]) => k.endsWith("_nano_usd")));
  const sub = (await app.call("GET", "/v1/billing/subscription", { key: org.orgKey })).json;
  const subscription = {
    plan: sub.plan?.id ?? null,
    pending: sub.pending_plan?.id ?? null,
    canceled: sub.canceled_at !== null,
  };
  return { invoices, planGrants, balance, subscription };
}

/** Runs the scenario on time and late, on two fresh orgs, and compares; the ledger stays consistent. */
async function check(app: TestApp, db: TestDatabase, s: Scenario, trace = false) {
  const onTime = await runVariant(app, db, s, false);
  const late = await runVariant(app, db, s, true);
  const story = `${JSON.stringify(s)}\non time:\n  ${onTime.story.join("\n  ")}\nlate:\n  ${late.story.join("\n  ")}\n`;
  if (trace) console.log(story, JSON.stringify({ onTime: onTime.outcome, late: late.outcome }, null, 1));
  await expectLedgerConsistent(db.sql);
  expect(late.outcome, story).toEqual(onTime.outcome);
}

/**
 * Whether the late run has money the close would judge differently between a boundary and its
 * close (the limits above): a grant or usage in the window, or a hold whose life overlaps it.
 */
function windowMoney(s: Scenario): boolean {
  const windows = boundaries(s.anchor).map((d, k) => [d.getTime(), d.getTime() + (s.delays[k] ?? 0) * SECOND]);
  return s.steps.some(({ when: w, action: a }) => {
    const t = instant(w, s.anchor);
    const until = a.kind === "hold" ? t + a.ttl * SECOND : t;
    return (
      (a.kind === "hold" || a.kind === "grant" || a.kind === "usage") &&
      windows.some(([from = 0, to = 0]) => t <= to && until >= from)
    );
  });
}

const property =
  (kinds: Kind[]) =>
  async ({ app, db }: { app: TestApp; db: TestDatabase }) => {
    await app.metering.ready();
    await fc.assert(
      fc.asyncProperty(scenarioOf(kinds), (s) => {
        fc.pre(!windowMoney(s));
        return check(app, db, s, !!process.env.TIMING_TRACE);
      }),
      // No run starts after the limit; one already running ends first (an interrupted run would go on
      // in the background, moving the shared clock under the next test).
      { numRuns: runs, seed, path, skipAllAfterTimeLimit: 240_000 },
    );
  };

/**
 * The smallest scenarios the property found (each shrunk by fast-check, each replayed twice), one
 * per way the late close changed the outcome; each failed before the fix.
 */
const counterexamples: { name: string; scenario: Scenario }[] = [
  {
    // Free plan; $0.01 of usage at 00:00:00 on 1 Nov, the close 1 s later. On time it is paid from
    // November's $5 of included credits; late, from the org's own $0.01 (the included credits do
    // not exist until the close), and November's $5 expire unused: the final balance is $5.00, not $5.01.
    name: "usage between a boundary and its close is paid from the org's own credits, not the new cycle's included credits",
    scenario: {
      anchor: 1,
      initialCents: 1,
      sweep: false,
      steps: [
        { when: { cycle: 1, at: "any", n: 0 }, action: { kind: "usage", cents: 1 } },
        { when: { cycle: 0, at: "any", n: 0 }, action: { kind: "subscribe", plan: "free" } },
      ],
      delays: [1, 600, 1],
    },
  },
  {
    // Free plan, no other credits: a $0.01 hold at 00:00:00 on 1 Nov is granted on time (November's
    // $5) and refused late (402 insufficient_balance): November's credits come with the close.
    name: "an authorization between a boundary and its close is refused for want of the new cycle's included credits",
    scenario: {
      anchor: 1,
      initialCents: 0,
      sweep: false,
      steps: [
        { when: { cycle: 1, at: "after", n: 0 }, action: { kind: "hold", cents: 1, ttl: 1 } },
        { when: { cycle: 0, at: "any", n: 0 }, action: { kind: "subscribe", plan: "free" } },
      ],
      delays: [1, 1, 600],
    },
  },
  {
    // A +$0.01 adjustment queued at 00:00:00 on 1 Nov: on the November invoice on time, on the
    // October invoice when the close runs at 00:10.
    name: "an adjustment queued between a boundary and its close lands on the ended cycle's invoice",
    scenario: {
      anchor: 1,
      initialCents: 5000,
      sweep: false,
      steps: [{ when: { cycle: 1, at: "after", n: 0 }, action: { kind: "adjust", cents: 1 } }],
      delays: [600, 600, 600],
    },
  },
  {
    // Not shrunk, built from the cases above to show the size: Team, $300 of own credits, $100
    // of usage at 00:00:30 on 1 Nov, the close at 00:01. On time the usage takes November's $250
    // of included credits and November's invoice is $100 due; late it takes the org's own $100,
    // November's $250 expire unused, and November's invoice is $200 due.
    name: "(size) a minute's delay costs a Team customer the usage of that minute, up to $250",
    scenario: {
      anchor: 1,
      initialCents: 30_000,
      sweep: false,
      steps: [
        { when: { cycle: 0, at: "any", n: 0 }, action: { kind: "subscribe", plan: "team" } },
        { when: { cycle: 1, at: "after", n: 30 }, action: { kind: "usage", cents: 10_000 } },
      ],
      delays: [60, 60, 60],
    },
  },
];

describe("worker timing, generated", () => {
  it.scoped({ appOptions: { clock } });

  if (process.env.TIMING_SCENARIO) {
    // Replays one scenario (JSON, as a counterexample prints it), traced.
    it("replays TIMING_SCENARIO", { timeout: 120_000 }, async ({ app, db }) => {
      await app.metering.ready();
      await check(app, db, JSON.parse(process.env.TIMING_SCENARIO as string) as Scenario, true);
    });
    return;
  }

  it(
    `billing is the same whether due cycles are closed at the boundary or late: every action (seed ${seed})`,
    { timeout: 300_000 },
    property(ALL_KINDS.filter((k) => !excluded.has(k))),
  );

  it(
    `billing is the same whether due cycles are closed at the boundary or late: subscription changes and early closes (seed ${seed})`,
    { timeout: 300_000 },
    property(["subscribe", "cancel", "endNow"]),
  );

  it.for(counterexamples)("counterexample: $name", { timeout: 60_000 }, async ({ scenario: s }, { app, db }) => {
    await app.metering.ready();
    await check(app, db, s);
  });
});
