import fc from "fast-check";
import { describe, expect } from "vitest";
import { budgetPeriod } from "../../src/billing/budgets.js";
import type { Sql } from "../../src/db/client.js";
import { createTestApp, manualClock, type TestApp } from "../support/app.js";
import { appTest as it } from "../support/fixtures.js";
import { expectLedgerConsistent } from "../support/ledger.js";

/**
 * A property test of budgets against the real metering path: generated sequences of authorize,
 * settle, report (without a hold), hold expiry and month changes, against an org budget, a key
 * budget and a project budget (hard) and a soft key budget. After every step:
 * - an authorization was granted exactly when every hard budget that applies to it had room:
 *   spent this period + live holds in its scope + amount <= limit (read just before the call; the
 *   balance is large enough never to be the reason), and a refusal names a budget without room;
 * - every budget's counter equals the cost of the usage_events recorded in its scope in each
 *   month the sequence touched (a settle that names no key or project is in the scope of its
 *   hold's: settles are generated both ways).
 */
const UNIT = 1_000_000n; // 400 input tokens of zen-pro = $0.001
const usd = (nano: bigint) => `${nano / 1_000_000_000n}.${(nano % 1_000_000_000n).toString().padStart(9, "0")}`;

type Attribution = { key: "a" | "b" | null; project: "p1" | "p2" | null };
type Command =
  | ({ kind: "authorize"; units: number } & Attribution)
  | { kind: "settle"; hold: number; units: number; bare: boolean }
  | ({ kind: "report"; units: number } & Attribution)
  | { kind: "advance"; seconds: number }
  | { kind: "next_month" };

const attribution = fc.record({
  key: fc.constantFrom("a" as const, "b" as const, null),
  project: fc.constantFrom("p1" as const, "p2" as const, null),
});
const command: fc.Arbitrary<Command> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc
      .record({ kind: fc.constant("authorize" as const), units: fc.integer({ min: 0, max: 4 }) })
      .chain((c) => attribution.map((a) => ({ ...c, ...a }))),
  },
  {
    weight: 3,
    arbitrary: fc.record({
      kind: fc.constant("settle" as const),
      hold: fc.nat(20),
      units: fc.integer({ min: 0, max: 6 }),
      // The gateway leaves the hold's key and project off its report: they count under the hold's.
      bare: fc.boolean(),
    }),
  },
  {
    weight: 2,
    arbitrary: fc
      .record({ kind: fc.constant("report" as const), units: fc.integer({ min: 0, max: 4 }) })
      .chain((c) => attribution.map((a) => ({ ...c, ...a }))),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("advance" as const), seconds: fc.constantFrom(1, 30, 61) }) },
  { weight: 1, arbitrary: fc.constant({ kind: "next_month" as const }) },
);
const limits = fc.record({
  org: fc.integer({ min: 1, max: 20 }),
  key: fc.integer({ min: 1, max: 10 }),
  project: fc.integer({ min: 1, max: 10 }),
  soft: fc.integer({ min: 1, max: 10 }),
});

type BudgetRow = {
  id: string;
  scope: string;
  project: string | null;
  api_key_id: string | null;
  limit_amount: bigint;
  enforcement: string;
};

/** What a hard budget has used at `now`: this period's counter and the live holds in its scope. */
async function used(sql: Sql, orgId: string, b: BudgetRow, now: Date): Promise<bigint> {
  const period = budgetPeriod(now);
  const [row] = await sql<{ spent: string; held: string }[]>`
    select coalesce((select spent from budget_periods where budget_id = ${b.id} and period_start = ${period.start}), 0)::text as spent,
      (select coalesce(sum(amount), 0) from holds
       where org_id = ${orgId} and status = 'active' and expires_at > ${now}
         and (${b.scope} = 'org' or api_key_id = ${b.api_key_id} or project = ${b.project}))::text as held`;
  return BigInt(row!.spent) + BigInt(row!.held);
}

async function expectCountersExact(sql: Sql, orgId: string, budgets: BudgetRow[], months: Set<number>) {
  for (const b of budgets) {
    for (const m of months) {
      const period = budgetPeriod(new Date(m));
      const [row] = await sql<{ counter: string; recorded: string }[]>`
        select coalesce((select spent from budget_periods where budget_id = ${b.id} and period_start = ${period.start}), 0)::text as counter,
          (select coalesce(sum(e.cost), 0) from usage_events e left join holds h on h.id = e.hold_id
           where e.org_id = ${orgId} and e.recorded_at >= ${period.start} and e.recorded_at < ${period.end}
             and (${b.scope} = 'org' or coalesce(e.api_key_id, h.api_key_id) = ${b.api_key_id}
                  or coalesce(e.project, h.project) = ${b.project}))::text as recorded`;
      expect(row!.counter, `${b.scope} budget, month ${period.start.toISOString()}`).toBe(row!.recorded);
    }
  }
}

describe("budgets: property of the hard check and the counters", () => {
  it.scoped({ dbOptions: { max: 6 } });

  it("granted exactly when every applicable hard budget has room; counters equal the usage recorded per month", async ({
    db,
  }) => {
    let runs = 0;
    let granted = 0;
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(limits, fc.array(command, { minLength: 5, maxLength: 25 }), async (limit, commands) => {
        runs++;
        const clock = manualClock(new Date("2026-11-30T23:50:00Z"));
        const app: TestApp = createTestApp({ sql: db.appSql, clock });
        const org = await app.createOrg(`model-${runs}`);
        await app.grant(org.id, "1000");
        const keyOf = async (name: string) =>
          (await app.call("POST", "/v1/billing/keys", { key: org.orgKey, body: { name } })).json.id as string;
        const keys = { a: await keyOf("a"), b: await keyOf("b") };
        const put = async (body: Record<string, unknown>) => {
          const res = await app.call("PUT", "/v1/billing/budgets", { key: org.orgKey, body });
          expect(res.status, res.text).toBe(201);
        };
        await put({ scope: "org", limit: usd(BigInt(limit.org) * UNIT), enforcement: "hard" });
        await put({ scope: "key", api_key_id: keys.a, limit: usd(BigInt(limit.key) * UNIT), enforcement: "hard" });
        await put({ scope: "project", project: "p1", limit: usd(BigInt(limit.project) * UNIT), enforcement: "hard" });
        await put({ scope: "key", api_key_id: keys.b, limit: usd(BigInt(limit.soft) * UNIT), enforcement: "soft" });
        const budgets = await db.sql<BudgetRow[]>`
          select id, scope, project, api_key_id, limit_amount, enforcement from budgets where org_id = ${org.id}`;
        const hard = budgets.filter((b) => b.enforcement === "hard");
        const holds: { id: string; key: string | null; project: string | null }[] = [];
        const months = new Set<number>([budgetPeriod(clock()).start.getTime()]);
        let seq = 0;

        for (const c of commands) {
          if (c.kind === "advance") clock.advance(c.seconds * 1000);
          else if (c.kind === "next_month") clock.set(budgetPeriod(clock()).end);
          else if (c.kind === "authorize") {
            const amount = BigInt(c.units) * UNIT;
            const apiKeyId = c.key ? keys[c.key] : null;
            const applies = hard.filter(
              (b) =>
                b.scope === "org" ||
                (b.scope === "key" && b.api_key_id === apiKeyId) ||
                (b.scope === "project" && b.project === c.project),
            );
            const room = new Map<string, boolean>();
            for (const b of applies)
              room.set(b.id, (await used(db.sql, org.id, b, clock())) + amount <= b.limit_amount);
            const res = await app.call("POST", "/v1/billing/authorize", {
              key: org.gatewayKey,
              body: {
                org_id: org.id,
                product: "llm",
                model: "zen-pro",
                estimate: { input_tokens: 400 * c.units },
                ttl_seconds: 60,
                ...(apiKeyId ? { api_key_id: apiKeyId } : {}),
                ...(c.project ? { project: c.project } : {}),
              },
            });
            if ([...room.values()].every(Boolean)) {
              expect(res.status, res.text).toBe(201);
              granted++;
              holds.push({ id: res.json.hold_id, key: apiKeyId, project: c.project });
            } else {
              expect(res.status, res.text).toBe(402);
              expect(res.json.error.code).toBe("spend_limit_reached");
              expect(room.get(res.json.error.budget.id)).toBe(false);
              refused++;
            }
          } else {
            const hold = c.kind === "settle" ? holds[c.hold % Math.max(holds.length, 1)] : undefined;
            if (c.kind === "settle" && !hold) continue;
            const bare = c.kind === "settle" && c.bare;
            const apiKeyId = hold ? (bare ? null : hold.key) : c.kind === "report" && c.key ? keys[c.key] : null;
            const project = hold ? (bare ? null : hold.project) : c.kind === "report" ? c.project : null;
            const res = await app.call("POST", "/v1/billing/usage", {
              key: org.gatewayKey,
              body: {
                events: [
                  {
                    idempotency_key: `m-${runs}-${++seq}`,
                    org_id: org.id,
                    timestamp: clock().toISOString(),
                    product: "llm",
                    model: "zen-pro",
                    quantities: { input_tokens: 400 * c.units },
                    ...(hold ? { hold_id: hold.id } : {}),
                    ...(apiKeyId ? { api_key_id: apiKeyId } : {}),
                    ...(project ? { project } : {}),
                  },
                ],
              },
            });
            expect(res.status, res.text).toBe(200);
            expect(res.json.recorded, res.text).toBe(1); // usage is never refused by a budget
          }
          months.add(budgetPeriod(clock()).start.getTime());
          await expectCountersExact(db.sql, org.id, budgets, months);
        }
      }),
      { numRuns: 12, endOnFailure: true },
    );
    // Not vacuous: both answers happened.
    expect(granted).toBeGreaterThan(0);
    expect(refused).toBeGreaterThan(0);
    await expectLedgerConsistent(db.sql);
  });
});
