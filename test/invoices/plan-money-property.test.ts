/**
 * Generated stories over two anchored months: subscribe / change plan / cancel / early close
 * (with or without an Idempotency-Key, retried) / usage / closes, each from one of three API
 * processes (on time, behind, ahead by a generated skew), some pairs racing. Then, per month:
 * the plan credits granted are at most what the month's plan charges paid for (each charged
 * cycle's share of its plan's included credits), and at least that when one plan was charged all
 * month; no two plan charges overlap; every invoice's lines sum to its subtotal; no 5xx; the
 * ledger balances.
 *
 * Custom catalog plans (up, down, flip, late, gone) change terms on 15, 18, 20, 25 Nov and 5 Dec.
 * MODEL_RUNS and MODEL_SEED as for the model tests (test/model/settings.ts); PLAN_SCENARIO='<json>'
 * replays one, printing each answer; PLAN_STOCK_ONLY=1 leaves out the custom plans. It found (by
 * helper-75, fixed): metering's grant of a month's credits racing a change of plan
 * (plan-credits-grant-race.test.ts), an org created by a process ahead (org-created-ahead.test.ts),
 * a cancel dated after an early end (early-close-cancel-after-end.test.ts).
 */
import fc from "fast-check";
import { describe, expect } from "vitest";
import { cycleContaining } from "../../src/billing/periods.js";
import { modelSettings } from "../model/settings.js";
import { createTestApp, manualClock, TEST_ADMIN_KEY, type TestApp } from "../support/app.js";
import type { TestDatabase } from "../support/database.js";
import { appTest as it } from "../support/fixtures.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import { checkLedger } from "../../src/ledger/check.js";
import { subscribedPlanAt } from "../../src/billing/plans.js";
import { loadPlanVersions } from "../support/catalog-versions.js";
import { testContext } from "../support/context.js";

const USD = 1_000_000_000n;
const SECOND = 1000;
const admin = { key: TEST_ADMIN_KEY };
const clock = manualClock();
const TERMS: Record<string, { price: bigint; credits: bigint }> = {
  Free: { price: 0n, credits: 5n * USD },
  Pro: { price: 20n * USD, credits: 20n * USD },
  Team: { price: 200n * USD, credits: 250n * USD },
};
const { runs: RUNS, seed: SEED } = modelSettings(60);

type Inst = "n" | "b" | "a";
type Action =
  | { kind: "subscribe"; plan: string }
  | { kind: "cancel" }
  | { kind: "endNow"; key: string | null }
  | { kind: "close" }
  | { kind: "usage"; requests: number };
type When = { month: 0 | 1; at: "after" | "before" | "any"; n: number };
type Step = { when: When; inst: Inst; action: Action; race: boolean };
type Scenario = { anchor: number; skew: number; creator: Inst; createLate: boolean; steps: Step[] };
const PLAN_IDS = process.env.PLAN_STOCK_ONLY
  ? ["free", "pro", "team"]
  : ["free", "pro", "team", "up", "down", "flip", "late", "gone"];
const p = (id: string, price: string, credits: string) => ({
  id,
  name: id,
  monthly_price: price,
  included_credits: credits,
});
/** Custom plans whose terms change within the months the stories run in (the stock plans never change). */
const VERSIONS = [
  {
    effectiveAt: "2026-10-01T00:00:00Z",
    plans: [
      p("up", "100.00", "150.00"),
      p("down", "100.00", "150.00"),
      p("flip", "100.00", "100.00"),
      p("gone", "60.00", "70.00"),
    ],
  },
  {
    effectiveAt: "2026-11-15T00:00:00Z",
    plans: [
      p("up", "150.00", "200.00"),
      p("down", "50.00", "60.00"),
      p("flip", "100.00", "100.00"),
      p("gone", "60.00", "70.00"),
    ],
  },
  {
    effectiveAt: "2026-11-18T00:00:00Z",
    plans: [
      p("up", "150.00", "200.00"),
      p("down", "50.00", "60.00"),
      p("flip", "100.00", "100.00"),
      p("gone", "60.00", "70.00"),
      p("late", "80.00", "90.00"),
    ],
  },
  {
    effectiveAt: "2026-11-20T00:00:00Z",
    plans: [
      p("up", "150.00", "200.00"),
      p("down", "50.00", "60.00"),
      p("flip", "100.00", "300.00"),
      p("gone", "60.00", "70.00"),
      p("late", "80.00", "90.00"),
    ],
  },
  {
    effectiveAt: "2026-11-25T00:00:00Z",
    plans: [
      p("up", "150.00", "200.00"),
      p("down", "50.00", "60.00"),
      p("flip", "100.00", "300.00"),
      p("late", "80.00", "90.00"),
    ],
  },
  {
    effectiveAt: "2026-12-05T00:00:00Z",
    plans: [
      p("up", "150.00", "200.00"),
      p("down", "50.00", "60.00"),
      p("flip", "100.00", "100.00"),
      p("late", "90.00", "80.00"),
    ],
  },
];

const action: fc.Arbitrary<Action> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("subscribe" as const), plan: fc.constantFrom(...PLAN_IDS) }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("cancel" as const) }) },
  { weight: 3, arbitrary: fc.record({ kind: fc.constant("endNow" as const), key: fc.constantFrom(null, "k1", "k2") }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("close" as const) }) },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant("usage" as const), requests: fc.integer({ min: 1, max: 3_000_000 }) }),
  },
);
const when: fc.Arbitrary<When> = fc.record({
  month: fc.constantFrom<0 | 1>(0, 1),
  at: fc.constantFrom("after" as const, "before" as const, "any" as const),
  n: fc.integer({ min: 0, max: 999_999 }),
});
const scenario: fc.Arbitrary<Scenario> = fc.record({
  anchor: fc.integer({ min: 1, max: 28 }),
  skew: fc.constantFrom(50, 5 * SECOND, 90 * SECOND),
  creator: fc.constantFrom<Inst>("n", "n", "b", "a"),
  createLate: fc.boolean(),
  steps: fc.array(fc.record({ when, inst: fc.constantFrom<Inst>("n", "n", "b", "a"), action, race: fc.boolean() }), {
    minLength: 1,
    maxLength: 12,
  }),
});

function months(anchor: number) {
  const m0 = cycleContaining(new Date("2026-11-10T00:00:00Z"), anchor);
  const m1 = cycleContaining(m0.end, anchor);
  return [m0, m1] as const;
}
function instant(w: When, anchor: number, late: boolean): number {
  const m = months(anchor)[w.month];
  const start =
    m.start.getTime() +
    (w.month === 0 ? (late ? m.end.getTime() - m.start.getTime() - 300 * SECOND : 3600 * SECOND) : 0);
  const end = m.end.getTime();
  if (w.at === "after") return Math.min(start + (w.n % 300) * SECOND, end - SECOND);
  if (w.at === "before") return Math.max(end - (w.n % 300) * SECOND - 1, start);
  return start + Math.floor(((end - start) * w.n) / 1_000_000);
}

let count = 0;
let catalogCtx: ReturnType<typeof testContext>;
async function run(app: TestApp, db: TestDatabase, s: Scenario) {
  const [m0, m1] = months(s.anchor);
  clock.set(new Date(s.createLate ? m0.end.getTime() - 30 * SECOND : m0.start.getTime() + 3600 * SECOND - 10 * SECOND));
  const apps: Record<Inst, TestApp> = {
    n: app,
    b: createTestApp({ sql: db.appSql, clock: () => new Date(clock().getTime() - s.skew) }),
    a: createTestApp({ sql: db.appSql, clock: () => new Date(clock().getTime() + s.skew) }),
  };
  const org = await apps[s.creator].call("POST", "/v1/admin/orgs", {
    ...admin,
    body: { name: `p${count++}`, billing_anchor_day: s.anchor },
  });
  expect(org.status, org.text).toBe(201);
  const orgId = org.json.id as string;
  const gk = await app.call("POST", "/v1/admin/keys", { ...admin, body: { scope: "gateway", name: `g${count}` } });
  const gatewayKey = gk.json.key as string;
  const answers: { step: number; status: number; text: string }[] = [];
  // The workers close the first month 5 s after its end (a close a whole month late grants no credits: documented).
  const worker: Step & { t: number; i: number } = {
    when: { month: 1, at: "after", n: 0 },
    inst: "n",
    action: { kind: "close" },
    race: false,
    t: m0.end.getTime() + 5 * SECOND,
    i: 1000,
  };
  const steps = [...s.steps.map((st, i) => ({ ...st, t: instant(st.when, s.anchor, s.createLate), i })), worker].sort(
    (x, y) => x.t - y.t || x.i - y.i,
  );
  let usageN = 0;
  const doStep = async (st: (typeof steps)[number]) => {
    const a = apps[st.inst];
    const own = a.clock();
    let r: { status: number; text: string };
    switch (st.action.kind) {
      case "subscribe":
        r = await a.call("PUT", `/v1/admin/orgs/${orgId}/subscription`, {
          ...admin,
          body: { plan_id: st.action.plan },
        });
        break;
      case "cancel":
        r = await a.call("DELETE", `/v1/admin/orgs/${orgId}/subscription`, admin);
        break;
      case "endNow":
        r = await a.call("POST", "/v1/admin/cycles/close", {
          ...admin,
          headers: st.action.key ? { "idempotency-key": `${orgId}-${st.action.key}` } : {},
          body: { org_id: orgId, end_current_cycle_now: true },
        });
        break;
      case "close":
        r = await a.call("POST", "/v1/admin/cycles/close", { ...admin, body: { org_id: orgId } });
        break;
      case "usage":
        r = await a.call("POST", "/v1/billing/usage", {
          key: gatewayKey,
          body: {
            events: [
              {
                idempotency_key: `u${usageN++}`,
                org_id: orgId,
                timestamp: own.toISOString(),
                product: "api",
                quantities: { requests: st.action.requests },
              },
            ],
          },
        });
        break;
    }
    answers.push({ step: st.i, status: r.status, text: r.text.slice(0, 300) });
  };
  // A step flagged `race` runs at once with the steps after it, up to the first one not flagged
  // (all at the first one's instant, each on its own process's clock).
  for (let k = 0; k < steps.length; ) {
    const group = [steps[k]!];
    while (group.at(-1)!.race && steps[k + group.length] && steps[k + group.length]!.i !== 1000 && group[0]!.i !== 1000)
      group.push(steps[k + group.length]!);
    clock.set(new Date(group[0]!.t));
    if (group.length > 1) await Promise.all(group.map(doStep));
    else for (const g of group) await doStep(g);
    k += group.length;
  }
  clock.set(new Date(m1.end.getTime() + 10 * SECOND));
  const last = await app.call("POST", "/v1/admin/cycles/close", { ...admin, body: { org_id: orgId } });
  answers.push({ step: -1, status: last.status, text: last.text.slice(0, 300) });

  const problems: string[] = [];
  for (const a of answers) if (a.status >= 500) problems.push(`step ${a.step}: ${a.status} ${a.text}`);
  const lines = await db.sql<
    { invoice_id: string; period_start: Date; period_end: Date; amount: bigint; description: string }[]
  >`
    select l.invoice_id, i.period_start, i.period_end, l.amount, l.description from invoice_lines l join invoices i on i.id = l.invoice_id
    where i.org_id = ${orgId} and l.kind = 'subscription' order by i.period_start`;
  for (let k = 1; k < lines.length; k++)
    if (lines[k]!.period_start < lines[k - 1]!.period_end)
      problems.push(`overlapping plan charges: ${JSON.stringify(lines.slice(k - 1, k + 1))}`);
  const sums = await db.sql<{ id: string; subtotal: bigint; lines: bigint | null }[]>`
    select i.id, i.subtotal, (select sum(amount) from invoice_lines l where l.invoice_id = i.id)::bigint as lines
    from invoices i where i.org_id = ${orgId}`;
  for (const x of sums)
    if ((x.lines ?? 0n) !== x.subtotal) problems.push(`invoice ${x.id}: lines ${x.lines} != subtotal ${x.subtotal}`);
  for (const m of [m0, m1]) {
    const monthMs = BigInt(m.end.getTime() - m.start.getTime());
    const inMonth = lines.filter((l) => l.period_start >= m.start && l.period_end <= m.end);
    let paidFor = 0n;
    const plans = new Set<string>();
    for (const l of inMonth) {
      const name = l.description.split(" plan")[0]!;
      plans.add(name);
      const id = TERMS[name] ? name.toLowerCase() : name;
      const plan = subscribedPlanAt(catalogCtx.catalog, id, l.period_start);
      const terms = { price: plan.monthlyPrice, credits: plan.includedCredits };
      paidFor += (terms.credits * BigInt(l.period_end.getTime() - l.period_start.getTime())) / monthMs;
    }
    const [g] = await db.sql<{ credits: bigint | null }[]>`
      select sum(amount)::bigint as credits from credit_grants where org_id = ${orgId} and source = 'plan' and expires_at = ${m.end}`;
    const credits = g?.credits ?? 0n;
    const tol = 10n;
    if (credits > paidFor + tol)
      problems.push(
        `month ${m.start.toISOString()}: plan credits ${credits} > paid for ${paidFor} (charges ${inMonth.map((l) => `${l.description}=${l.amount}`).join(", ")})`,
      );
    if (plans.size <= 1 && credits < paidFor - tol)
      problems.push(
        `month ${m.start.toISOString()}: plan credits ${credits} < paid for ${paidFor} (charges ${inMonth.map((l) => `${l.description}=${l.amount}`).join(", ")})`,
      );
  }
  const ledger = await checkLedger(db.sql);
  if (ledger.unbalancedTransactions.length + ledger.balanceMismatches.length + ledger.heldMismatches.length > 0)
    problems.push(`ledger: ${JSON.stringify(ledger, (_k, v) => (typeof v === "bigint" ? v.toString() : v))}`);
  return { problems, answers, orgId };
}

describe("plan money over generated stories", () => {
  it.scoped({ appOptions: { clock } });

  it("charges and plan credits go together, whatever the order, clocks and races", async ({ app, db }) => {
    if (!process.env.PLAN_STOCK_ONLY)
      await loadPlanVersions(
        db.sql,
        VERSIONS.map((v) => ({ effectiveAt: v.effectiveAt, plans: (stock) => [...stock, ...v.plans] })),
      );
    catalogCtx = testContext(db.sql);
    await catalogCtx.catalog.refresh();
    const replay = process.env.PLAN_SCENARIO ? (JSON.parse(process.env.PLAN_SCENARIO) as Scenario) : undefined;
    if (replay) {
      const r = await run(app, db, replay);
      console.log(JSON.stringify(r.answers, null, 1));
      expect(r.problems).toEqual([]);
      return;
    }
    await fc.assert(
      fc.asyncProperty(scenario, async (s) => {
        const r = await run(app, db, s);
        if (r.problems.length > 0) throw new Error(`${r.problems.join("\n")}\nscenario: ${JSON.stringify(s)}`);
      }),
      { numRuns: RUNS, seed: SEED, endOnFailure: false },
    );
    await expectLedgerConsistent(db.sql);
  }, 600_000);
});
