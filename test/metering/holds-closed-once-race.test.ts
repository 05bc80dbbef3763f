import fc from "fast-check";
import { describe, expect } from "vitest";
import { callMeteringBatch } from "../../src/billing/group-commit.js";
import type { Hold } from "../../src/billing/holds.js";
import { Metering } from "../../src/billing/metering.js";
import type { UsageResult } from "../../src/billing/usage.js";
import { createSql, type Sql } from "../../src/db/client.js";
import { appTest as it } from "../support/fixtures.js";
import { expectLedgerConsistent } from "../support/ledger.js";

// An attack on closing holds (metering_expire_holds, metering_settle, whose guard is written
// `h.status || '' = 'active'` so the planner reaches holds by primary key):
// thousands of holds in flight, statistics taken while few were active, then generated sequences of
// settles (both replicas, same key replayed, changed payload under one key), settles racing the
// expiry of their hold (authorizations and the sweeper at a time past the TTL), usage naming another
// organization's hold. After each run: every hold closed at most once and consistently with its
// answers, `held` = sum of active holds, balance = entries = granted - usage.
const NOW = new Date("2026-11-20T12:00:00Z");
const GRANT_USD = 1000n;
const NANO = 1_000_000_000n;
const TTL = 10; // seconds, for the holds each run fights over
const HOLDS_PER_ORG = 3;
const show = (x: unknown) => JSON.stringify(x, (_, v) => (typeof v === "bigint" ? v.toString() : v));

type Op =
  | { kind: "settle"; hold: number; key: number; replica: number; late: boolean }
  | { kind: "reuse"; hold: number; replica: number; late: boolean }
  | { kind: "cross"; hold: number; replica: number; late: boolean }
  | { kind: "authorize"; org: number; replica: number }
  | { kind: "sweep"; orgs: number[]; replica: number };

/** An operation on one of the run's holds, from either replica, before or after its expiry. */
function holdOp<K extends "reuse" | "cross">(kind: K) {
  return fc.record({
    kind: fc.constant(kind),
    hold: fc.integer({ min: 0, max: 2 * HOLDS_PER_ORG - 1 }),
    replica: fc.integer({ min: 0, max: 1 }),
    late: fc.boolean(),
  });
}

const opArb: fc.Arbitrary<Op> = fc.oneof(
  {
    weight: 5,
    arbitrary: fc.record({
      kind: fc.constant("settle" as const),
      hold: fc.integer({ min: 0, max: 2 * HOLDS_PER_ORG - 1 }),
      key: fc.integer({ min: 0, max: 2 }),
      replica: fc.integer({ min: 0, max: 1 }),
      late: fc.boolean(),
    }),
  },
  { weight: 1, arbitrary: holdOp("reuse") },
  { weight: 1, arbitrary: holdOp("cross") },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("authorize" as const),
      org: fc.integer({ min: 0, max: 1 }),
      replica: fc.integer({ min: 0, max: 1 }),
    }),
  },
  {
    weight: 2,
    arbitrary: fc.record({
      kind: fc.constant("sweep" as const),
      orgs: fc.subarray([0, 1], { minLength: 1 }),
      replica: fc.integer({ min: 0, max: 1 }),
    }),
  },
);

/**
 * One run that reaches every case the test checks it reached: a settle and its replay (hold 0), two
 * reuses of one key naming different holds (1 and 2: one refused as idempotency_key_reused), another
 * org naming hold 3 (hold_not_found), a settle after hold 4's expiry (already_closed, the hold
 * expired), and hold 5 left active. The late settle is alone on replica 1: a batch runs at its latest
 * item's time (Metering.writeBatch), so early settles batched with it found their holds expired and
 * none was settled (about every other run, when both organizations shared a lane).
 */
const everyCase: Op[] = [
  { kind: "settle", hold: 0, key: 0, replica: 0, late: false },
  { kind: "settle", hold: 0, key: 0, replica: 0, late: false },
  { kind: "reuse", hold: 1, replica: 0, late: false },
  { kind: "reuse", hold: 2, replica: 0, late: false },
  { kind: "cross", hold: 3, replica: 0, late: false },
  { kind: "settle", hold: 4, key: 1, replica: 1, late: true },
];

describe("holds closed once under racing replicas, with thousands in flight", () => {
  it.scoped({ dbOptions: { max: 10 }, appOptions: { clock: () => NOW } });

  it("every hold is settled or expired once, and the money matches", { timeout: 600_000 }, async ({ app, db }) => {
    const orgs = [await app.createOrg("race-a"), await app.createOrg("race-b")];
    for (const o of orgs) await app.grant(o.id, String(GRANT_USD));
    const replicas = [0, 1].map(() => {
      const sql = createSql(db.appUrl, { max: 4 });
      return { sql, metering: new Metering(sql, { lanes: 2 }) };
    });
    await Promise.all(replicas.map((r) => r.metering.ready()));
    const estimate = { input_tokens: 1000n, output_tokens: 1000n };
    const authorize = (m: Metering, orgId: string, at: Date, ttlSeconds: number, key?: string) =>
      m.authorize({ orgId, product: "llm", model: "zen-pro", estimate, idempotencyKey: key, ttlSeconds }, at);

    try {
      // Statistics from settled holds, none active; then 3,000 holds in flight (two hours' TTL).
      const past = await Promise.all(
        Array.from({ length: 200 }, () => authorize(app.metering, orgs[0]!.id, NOW, 7200)),
      );
      await app.metering.recordUsageMany(
        past.map((h, i) => ({
          orgId: orgs[0]!.id,
          idempotencyKey: `past-${i}`,
          occurredAt: NOW,
          product: "llm",
          model: "zen-pro",
          quantities: { input_tokens: 5n, output_tokens: 5n },
          holdId: h.id,
        })),
        NOW,
      );
      await db.sql`analyze holds`;
      const inFlight: Hold[] = [];
      for (let i = 0; i < 3000; i += 500)
        inFlight.push(
          ...(await Promise.all(
            Array.from({ length: 500 }, (_, j) =>
              authorize(replicas[j % 2]!.metering, orgs[(i + j) % 2]!.id, NOW, 7200),
            ),
          )),
        );

      let run = 0;
      const seen = new Map<string, number>();
      const note = (what: string) => seen.set(what, (seen.get(what) ?? 0) + 1);
      await fc.assert(
        fc.asyncProperty(fc.array(opArb, { minLength: 1, maxLength: 24 }), async (ops) => {
          run++;
          const base = new Date(NOW.getTime() + run * 15_000);
          const early = new Date(base.getTime() + 2_000);
          const late = new Date(base.getTime() + (TTL + 5) * 1000);
          // Holds 0..2 are org A's, 3..5 org B's, all taken at `base`, expiring at base + TTL.
          const holds: Hold[] = [];
          for (let h = 0; h < 2 * HOLDS_PER_ORG; h++)
            holds.push(
              await authorize(
                replicas[h % 2]!.metering,
                orgs[Math.floor(h / HOLDS_PER_ORG)]!.id,
                base,
                TTL,
                `run${run}-auth${h}`,
              ),
            );
          const orgOf = (h: number) => Math.floor(h / HOLDS_PER_ORG);
          type Sent = { op: Op; key: string; orgId: string; holdId: string; result: UsageResult | Error };
          const sent: Sent[] = [];
          const usage = (
            op: Op & { replica: number; late: boolean },
            orgIdx: number,
            key: string,
            hold: number,
            q: bigint,
          ) => {
            const orgId = orgs[orgIdx]!.id;
            const holdId = holds[hold]!.id;
            return replicas[op.replica]!.metering.recordUsageMany(
              [
                {
                  orgId,
                  idempotencyKey: key,
                  occurredAt: base,
                  product: "llm",
                  model: "zen-pro",
                  quantities: { input_tokens: q, output_tokens: q },
                  holdId,
                },
              ],
              op.late ? late : early,
            ).then(([r]) => {
              sent.push({ op, key, orgId, holdId, result: r! });
            });
          };
          await Promise.all(
            ops.map((op) => {
              switch (op.kind) {
                case "settle": // key 2 is free usage (cost 0)
                  return usage(
                    op,
                    orgOf(op.hold),
                    `run${run}-h${op.hold}-k${op.key}`,
                    op.hold,
                    op.key === 2 ? 0n : 100n * BigInt(op.key + 1),
                  );
                case "reuse": // one key, naming whichever hold: a changed payload when the hold differs
                  return usage(op, orgOf(op.hold), `run${run}-shared-${orgOf(op.hold)}`, op.hold, 50n);
                case "cross": // the other organization names this hold
                  return usage(op, 1 - orgOf(op.hold), `run${run}-cross-${op.hold}`, op.hold, 70n);
                case "authorize":
                  return authorize(replicas[op.replica]!.metering, orgs[op.org]!.id, late, 3600).then(() => undefined);
                case "sweep":
                  return callMeteringBatch(
                    replicas[op.replica]!.sql as Sql,
                    late,
                    op.orgs.map((o) => ({ org_id: orgs[o]!.id, usage_txn: null, alert_id: null })),
                    [],
                    [],
                  ).then(() => undefined);
                default:
                  throw new Error(`unknown operation ${(op as { kind: string }).kind}`);
              }
            }),
          );

          // Answers: a cross-organization hold is never found; one event per key, every answer names it.
          for (const s of sent) if (s.result instanceof Error) note(`error ${(s.result as { code?: string }).code}`);
          for (const s of sent) if (!(s.result instanceof Error) && s.result.replayed) note("usage replayed");
          for (const s of sent.filter((s) => s.op.kind === "cross"))
            expect(s.result).toMatchObject({ code: "hold_not_found" });
          const rows = await db.sql<
            {
              id: string;
              key: string;
              org_id: string;
              hold_id: string | null;
              transaction_id: string | null;
              cost: bigint;
            }[]
          >`select id, idempotency_key as key, org_id, hold_id, transaction_id, cost from usage_events
            where org_id = any (${orgs.map((o) => o.id)}::text[]) and idempotency_key like ${`run${run}-%`}`;
          const byKey = new Map<string, (typeof rows)[number]>();
          for (const r of rows) {
            expect(byKey.has(`${r.org_id}/${r.key}`), `two events for ${r.key}`).toBe(false);
            byKey.set(`${r.org_id}/${r.key}`, r);
          }
          for (const s of sent) {
            if (s.result instanceof Error) continue;
            const row = byKey.get(`${s.orgId}/${s.key}`);
            expect(row, `no event for answered key ${s.key}`).toBeDefined();
            expect(s.result.usageId).toBe(row!.id);
          }
          for (const key of new Set(sent.filter((s) => !(s.result instanceof Error)).map((s) => `${s.orgId}/${s.key}`)))
            expect(
              sent.filter((s) => `${s.orgId}/${s.key}` === key && !(s.result instanceof Error) && !s.result.replayed),
              `recorded answers for ${key}`,
            ).toHaveLength(1);

          // Every hold of the run: closed once, as its answers say.
          const hs = await db.sql<
            {
              id: string;
              status: string;
              closed_at: Date | null;
              expires_at: Date;
              close_transaction_id: string | null;
            }[]
          >`select id, status, closed_at, expires_at, close_transaction_id from holds where id = any (${holds.map((h) => h.id)}::text[])`;
          expect(hs).toHaveLength(holds.length);
          for (const h of hs) {
            const settledBy = sent.filter(
              (s) =>
                s.holdId === h.id &&
                !(s.result instanceof Error) &&
                !s.result.replayed &&
                s.result.holdOutcome === "settled",
            );
            const ctx = show({ h, ops, settledBy: settledBy.map((s) => s.key) });
            note(`hold ${h.status}`);
            if (h.status === "settled") {
              expect(settledBy, ctx).toHaveLength(1);
              expect(h.closed_at!.getTime(), ctx).toBeLessThan(h.expires_at.getTime());
              const ev = byKey.get(`${settledBy[0]!.orgId}/${settledBy[0]!.key}`)!;
              expect(ev.hold_id, ctx).toBe(h.id);
              expect(h.close_transaction_id, ctx).toBe(ev.transaction_id);
              if (ev.transaction_id === null) expect(ev.cost).toBe(0n);
            } else if (h.status === "expired") {
              expect(settledBy, ctx).toHaveLength(0);
              expect(h.closed_at!.getTime(), ctx).toBeGreaterThanOrEqual(h.expires_at.getTime());
              expect(h.close_transaction_id, ctx).toBeNull();
            } else {
              expect(h.status, ctx).toBe("active");
              expect(settledBy, ctx).toHaveLength(0);
              expect(h.closed_at, ctx).toBeNull();
              // A sweep of its organization past the TTL closes it.
              const org = orgOf(holds.findIndex((x) => x.id === h.id));
              const swept = ops.some(
                (o) => (o.kind === "sweep" && o.orgs.includes(org)) || (o.kind === "authorize" && o.org === org),
              );
              expect(swept, ctx).toBe(false);
            }
            // An event answered already_closed was charged in full and left the hold as it was.
          }
          for (const s of sent) {
            if (s.result instanceof Error || s.result.replayed) continue;
            const h = hs.find((x) => x.id === s.holdId)!;
            note(`usage ${s.result.holdOutcome}`);
            if (s.result.holdOutcome === "already_closed") expect(h.status, show({ s, h })).not.toBe("active");
          }

          // Money, per organization.
          for (const o of orgs) {
            const [m] = await db.sql<
              { balance: bigint; held: bigint; active: bigint; entries: bigint; used: bigint }[]
            >`select a.balance, a.held,
                (select coalesce(sum(amount), 0)::bigint from holds where org_id = ${o.id} and status = 'active') as active,
                (select coalesce(sum(amount), 0)::bigint from ledger_entries where account_id = a.id) as entries,
                (select coalesce(sum(cost), 0)::bigint from usage_events where org_id = ${o.id}) as used
              from ledger_accounts a where a.id = ${`org:${o.id}:credits`}`;
            expect(m!.held, `held of ${o.id}`).toBe(m!.active);
            expect(m!.balance).toBe(m!.entries);
            expect(m!.balance).toBe(GRANT_USD * NANO - m!.used);
          }
        }),
        // The generated runs reach every case below only most of the time (two reuses of one key
        // for different holds of one org came up in about 2-3 % of runs, so 100 runs missed it about
        // once in twelve): this run, always first, reaches each of them.
        { numRuns: 100, examples: [[everyCase]] },
      );
      // The runs reached every case: settled, expired, left active, replays, refusals.
      for (const what of [
        "hold settled",
        "hold expired",
        "hold active",
        "usage settled",
        "usage already_closed",
        "usage replayed",
        "error hold_not_found",
        "error idempotency_key_reused",
      ])
        expect(seen.get(what) ?? 0, show([...seen])).toBeGreaterThan(0);
      // The in-flight holds: 600 settled by replica 1 just before their expiry, racing replica 0's
      // sweep past it (one big phase 2 through cached plans), then a second sweep. Each is closed
      // once: settled exactly when its event says so, expired otherwise.
      const end = new Date(NOW.getTime() + 3 * 3600_000);
      const beforeExpiry = new Date(NOW.getTime() + 7199_000);
      const toSettle = inFlight.slice(0, 600);
      const sweep = () =>
        callMeteringBatch(
          replicas[0]!.sql,
          end,
          orgs.map((o) => ({ org_id: o.id, usage_txn: null, alert_id: null })),
          [],
          [],
        );
      const settle = (h: Hold, i: number) =>
        replicas[1]!.metering
          .recordUsageMany(
            [
              {
                orgId: h.orgId,
                idempotencyKey: `final-${i}`,
                occurredAt: beforeExpiry,
                product: "llm",
                model: "zen-pro",
                quantities: { input_tokens: 10n, output_tokens: 10n },
                holdId: h.id,
              },
            ],
            beforeExpiry,
          )
          .then(([r]) => r!);
      // The first 100 settle before the sweep starts; the other 500 are sent with it, one at a time.
      const head = await Promise.all(toSettle.slice(0, 100).map(settle));
      const [first, tail] = await Promise.all([
        sweep(),
        Promise.all(toSettle.slice(100).map((h, j) => settle(h, j + 100))),
      ]);
      const answers = [...head, ...tail];
      const second = await sweep();
      const settledNow = answers.filter((a) => !(a instanceof Error) && a.holdOutcome === "settled").length;
      expect(answers.every((a) => !(a instanceof Error))).toBe(true);
      expect(first.expired_holds + second.expired_holds + settledNow).toBeGreaterThanOrEqual(3000);
      const finalRows = await db.sql<{ id: string; status: string }[]>`
        select id, status from holds where id = any (${toSettle.map((h) => h.id)}::text[])`;
      const statusOf = new Map(finalRows.map((r) => [r.id, r.status]));
      for (const [i, a] of answers.entries()) {
        const h = toSettle[i]!;
        expect(statusOf.get(h.id), show({ a, h })).toBe(
          (a as UsageResult).holdOutcome === "settled" ? "settled" : "expired",
        );
      }
      const [due] = await db.sql<{ active: number }[]>`
        select count(*)::int as active from holds where status = 'active' and expires_at <= ${end}`;
      expect(due!.active).toBe(0);
      for (const o of orgs) {
        const [m] = await db.sql<
          { held: bigint }[]
        >`select held from ledger_accounts where id = ${`org:${o.id}:credits`}`;
        const [a] = await db.sql<{ s: bigint }[]>`
          select coalesce(sum(amount), 0)::bigint as s from holds where org_id = ${o.id} and status = 'active'`;
        expect(m!.held).toBe(a!.s);
      }
      await expectLedgerConsistent(db.sql);
    } finally {
      await Promise.all(replicas.map((r) => r.sql.end()));
    }
  });
});
