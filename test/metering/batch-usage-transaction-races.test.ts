import fc from "fast-check";
import { describe, expect } from "vitest";
import { createSql, type Sql } from "../../src/db/client.js";
import { manualClock, type TestApp, createTestApp } from "../support/app.js";
import { parseCsv } from "../support/csv.js";
import { appTest as it } from "../support/fixtures.js";
import { snapshot, violations } from "../model/invariants.js";

// A metering batch posts its usage as one ledger transaction for all of its organizations
// (metering_post, migration 0040). Generated reports from two replicas (one lane and two lanes,
// so the same organizations are batched together on one and apart on the other), mixing paid and
// free events, replays of earlier events, reused keys, hold settles and second settles of a
// settled hold, sometimes the same report sent to both replicas at once. After each run: every
// usage transaction balances with one revenue entry for its organizations' sum, revenue equals
// the cost of all usage, and each organization's list (paged) and CSV export show exactly the
// transactions that move its money, each with its own amount and event count, and name every
// transaction its usage, holds and alerts name.
const clock = manualClock(new Date("2026-11-15T12:00:00Z"));
const ORGS = 3;

type Org = Awaited<ReturnType<TestApp["createOrg"]>>;
type Ev =
  | { kind: "paid"; org: number; requests: number }
  | { kind: "free"; org: number }
  | { kind: "replay"; pick: number }
  | { kind: "reuse"; pick: number; requests: number }
  | { kind: "settle"; org: number; requests: number; estimate: number }
  | { kind: "resettle"; pick: number; requests: number };
type Report = { replica: number; twin: boolean; events: Ev[]; grant: number | null };

const org = fc.integer({ min: 0, max: ORGS - 1 });
const requests = fc.integer({ min: 1, max: 40_000 }); // up to 4 USD
const pick = fc.nat();
const evArb: fc.Arbitrary<Ev> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant("paid" as const), org, requests }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("free" as const), org }) },
  { weight: 2, arbitrary: fc.record({ kind: fc.constant("replay" as const), pick }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("reuse" as const), pick, requests }) },
  {
    weight: 2,
    arbitrary: fc.record({ kind: fc.constant("settle" as const), org, requests, estimate: requests }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant("resettle" as const), pick, requests }) },
);
const reportArb: fc.Arbitrary<Report> = fc.record({
  replica: fc.integer({ min: 0, max: 1 }),
  twin: fc.boolean(),
  events: fc.array(evArb, { minLength: 1, maxLength: 6 }),
  grant: fc.option(org, { nil: null }), // a grant to that org before the round: the list's other source
});
const roundsArb = fc.array(fc.array(reportArb, { minLength: 1, maxLength: 3 }), { minLength: 1, maxLength: 4 });

type Body = {
  idempotency_key: string;
  org_id: string;
  timestamp: string;
  product: string;
  quantities: { requests: number };
  hold_id?: string;
};
type Listed = { id: string; kind: string; amount_nano_usd: string; metadata: Record<string, unknown> };

/** The org's whole list through the cursor, `limit` a page. */
async function listAll(app: TestApp, key: string, limit: number): Promise<{ items: Listed[]; cursors: bigint[] }> {
  const items: Listed[] = [];
  const cursors: bigint[] = [];
  let cursor: string | undefined;
  for (;;) {
    const res = await app.call("GET", `/v1/billing/transactions?limit=${limit}${cursor ? `&cursor=${cursor}` : ""}`, {
      key,
    });
    expect(res.status).toBe(200);
    items.push(...res.json.data);
    if (!res.json.has_more) return { items, cursors };
    cursor = res.json.next_cursor as string;
    cursors.push(BigInt(/^s:(\d+)$/.exec(Buffer.from(cursor, "base64url").toString())?.[1] ?? "-1"));
  }
}

/** What each org's list must be: every transaction with an entry on its accounts, newest first, with its net. */
async function expectedList(sql: Sql, orgId: string) {
  return sql<{ id: string; amount: string; kind: string; events: number | null }[]>`
    select t.id, sum(e.amount)::text as amount, t.kind,
      (select count(*)::int from usage_events u where u.org_id = ${orgId} and u.transaction_id = t.id) as events
    from ledger_entries e
    join ledger_accounts a on a.id = e.account_id
    join ledger_transactions t on t.id = e.transaction_id
    where a.org_id = ${orgId}
    group by t.id, t.seq, t.kind
    order by t.seq desc`;
}

async function invariants(app: TestApp, sql: Sql, orgs: Org[]): Promise<string[]> {
  const out: string[] = [];
  const ids = orgs.map((o) => o.id);
  // Each usage transaction: balanced, one revenue entry = the sum of its organizations' entries =
  // the cost of the events naming it, one ledger_transaction_orgs row per organization entry, at
  // the transaction's seq, and no organization of its own.
  const usage = await sql<
    {
      id: string;
      org_id: string | null;
      metadata: { events: number; organizations: number };
      total: string;
      rev_n: number;
      rev: string;
      org_n: number;
      m_n: number;
      m_bad: number;
      cost: string;
      n_events: number;
    }[]
  >`
    select t.id, t.org_id, t.metadata,
      (select coalesce(sum(e.amount), 0)::text from ledger_entries e where e.transaction_id = t.id) as total,
      (select count(*)::int from ledger_entries e where e.transaction_id = t.id and e.account_id = 'system:revenue') as rev_n,
      (select coalesce(sum(e.amount), 0)::text from ledger_entries e where e.transaction_id = t.id and e.account_id = 'system:revenue') as rev,
      (select count(*)::int from ledger_entries e where e.transaction_id = t.id and e.account_id like 'org:%') as org_n,
      (select count(*)::int from ledger_transaction_orgs m where m.transaction_id = t.id) as m_n,
      (select count(*)::int from ledger_transaction_orgs m
        where m.transaction_id = t.id and (m.seq <> t.seq or m.created_at <> t.created_at
          or not exists (select 1 from ledger_entries e where e.transaction_id = t.id and e.account_id = 'org:' || m.org_id || ':credits'))) as m_bad,
      (select coalesce(sum(u.cost), 0)::text from usage_events u where u.transaction_id = t.id) as cost,
      (select count(*)::int from usage_events u where u.transaction_id = t.id) as n_events
    from ledger_transactions t
    where t.kind = 'usage' and t.id in (select m.transaction_id from ledger_transaction_orgs m where m.org_id = any(${ids}))`;
  for (const t of usage) {
    const bad =
      t.org_id !== null ||
      t.total !== "0" ||
      t.rev_n !== 1 ||
      t.rev !== t.cost ||
      t.org_n !== t.m_n ||
      t.m_bad !== 0 ||
      t.metadata.organizations !== t.m_n ||
      t.metadata.events !== t.n_events;
    if (bad) out.push(`usage transaction ${t.id}: ${JSON.stringify(t)}`);
  }
  // Revenue is exactly what all usage cost (this file's database: only usage credits revenue).
  const [rev] = await sql<{ revenue: string; usage: string }[]>`
    select (select coalesce(sum(amount), 0)::text from ledger_entries where account_id = 'system:revenue') as revenue,
           (select coalesce(sum(cost), 0)::text from usage_events where transaction_id is not null) as usage`;
  if (rev?.revenue !== rev?.usage) out.push(`revenue ${rev?.revenue} but usage cost ${rev?.usage}`);
  const [free] = await sql<{ n: number }[]>`
    select count(*)::int as n from usage_events where org_id = any(${ids}) and cost > 0 and transaction_id is null`;
  if (free?.n) out.push(`${free.n} paid events name no transaction`);

  for (const o of orgs) {
    const expected = await expectedList(sql, o.id);
    const { items, cursors } = await listAll(app, o.orgKey, 3);
    const got = items.map((t) => ({
      id: t.id,
      amount: t.amount_nano_usd,
      kind: t.kind,
      events: t.kind === "usage" ? (t.metadata.events as number) : 0,
    }));
    const want = expected.map((t) => ({ id: t.id, amount: t.amount, kind: t.kind, events: t.events ?? 0 }));
    if (JSON.stringify(got) !== JSON.stringify(want))
      out.push(`${o.id}: list ${JSON.stringify(got)} but its money is in ${JSON.stringify(want)}`);
    if (new Set(items.map((t) => t.id)).size !== items.length) out.push(`${o.id}: a transaction listed twice`);
    if (cursors.some((c, i) => i > 0 && c >= (cursors[i - 1] ?? 0n))) out.push(`${o.id}: cursors not descending`);
    const listed = new Set(items.map((t) => t.id));
    const named = await sql<{ what: string; id: string }[]>`
      select 'usage event' as what, transaction_id as id from usage_events where org_id = ${o.id} and transaction_id is not null
      union select 'hold', close_transaction_id from holds where org_id = ${o.id} and close_transaction_id is not null
      union select 'alert', transaction_id from balance_alerts where org_id = ${o.id}`;
    for (const n of named)
      if (!listed.has(n.id)) out.push(`${o.id}: its ${n.what} names ${n.id}, which its list does not show`);
    // The CSV export: the same transactions, oldest first.
    const start = new Date(clock().getTime() - 86_400_000).toISOString();
    const end = new Date(clock().getTime() + 86_400_000).toISOString();
    const csv = await app.call("GET", `/v1/billing/exports/transactions.csv?start=${start}&end=${end}`, {
      key: o.orgKey,
    });
    if (csv.status !== 200) out.push(`${o.id}: export answered ${csv.status}`);
    else {
      const [header, ...rows] = parseCsv(csv.text).filter((r) => r.length > 1);
      const idCol = header?.indexOf("id") ?? -1;
      const amountCol = header?.indexOf("amount_nano_usd") ?? -1;
      const exported = rows.map((r) => ({ id: r[idCol], amount: r[amountCol] }));
      const wantCsv = [...want].reverse().map((t) => ({ id: t.id, amount: t.amount }));
      if (JSON.stringify(exported) !== JSON.stringify(wantCsv))
        out.push(`${o.id}: export ${JSON.stringify(exported)} but ${JSON.stringify(wantCsv)}`);
    }
  }
  out.push(...violations(await snapshot(sql, ids), ids));
  return out;
}

describe("a batch's one usage transaction under racing replicas", () => {
  it.scoped({ dbOptions: { max: 8 }, appOptions: { clock, meteringLanes: 1 } });

  it("generated reports from two replicas: money, revenue, lists and exports stay exact", { timeout: 60_000 }, async ({
    app,
    db,
  }) => {
    const sql2 = createSql(db.appUrl, { max: 4 });
    const app2 = createTestApp({ sql: sql2, clock, meteringLanes: 2 });
    const replicas = [app, app2];
    let run = 0;
    let twinsChecked = 0;
    try {
      await fc.assert(
        fc.asyncProperty(roundsArb, async (rounds) => {
          run++;
          const orgs: Org[] = [];
          for (let i = 0; i < ORGS; i++) {
            const o = await app.createOrg(`race-${run}-${i}`);
            await app.grant(o.id, "20"); // threshold 10.00: some runs cross it
            orgs.push(o);
          }
          const gateway = orgs[0]?.gatewayKey ?? "";
          const sent: Body[] = [];
          const holds: string[] = [];
          let k = 0;
          for (const round of rounds) {
            // Holds first (each on some replica), then the round's reports all at once.
            const reports: { replica: number; twin: boolean; bodies: Body[] }[] = [];
            for (const r of round) {
              if (r.grant !== null) await app.grant(orgs[r.grant]?.id ?? "", "3");
              const bodies: Body[] = [];
              for (const ev of r.events) {
                const base = (o: number, q: number): Body => ({
                  idempotency_key: `r${run}-e${++k}`,
                  org_id: orgs[o]?.id ?? "",
                  timestamp: clock().toISOString(),
                  product: "api",
                  quantities: { requests: q },
                });
                const prior = (p: number) => (sent.length > 0 ? sent[p % sent.length] : undefined);
                if (ev.kind === "paid") bodies.push(base(ev.org, ev.requests));
                else if (ev.kind === "free") bodies.push(base(ev.org, 0));
                else if (ev.kind === "replay") {
                  const p = prior(ev.pick);
                  if (p) bodies.push(p);
                } else if (ev.kind === "reuse") {
                  const p = prior(ev.pick);
                  if (p) bodies.push({ ...p, quantities: { requests: p.quantities.requests + ev.requests } });
                } else if (ev.kind === "settle") {
                  const h = await replicas[r.replica]?.call("POST", "/v1/billing/authorize", {
                    key: gateway,
                    body: {
                      org_id: orgs[ev.org]?.id,
                      product: "api",
                      estimate: { requests: ev.estimate },
                      ttl_seconds: 600,
                    },
                  });
                  const body = base(ev.org, ev.requests);
                  if (h?.status === 201) {
                    holds.push(h.json.hold_id);
                    body.hold_id = h.json.hold_id;
                  }
                  bodies.push(body);
                } else {
                  const hold = holds.length > 0 ? holds[ev.pick % holds.length] : undefined;
                  const p = hold ? sent.find((b) => b.hold_id === hold) : undefined;
                  if (p) bodies.push({ ...base(0, ev.requests), org_id: p.org_id, hold_id: hold });
                }
              }
              sent.push(...bodies);
              if (bodies.length > 0) reports.push({ replica: r.replica, twin: r.twin, bodies });
            }
            const post = (replica: number, bodies: Body[]) =>
              (replicas[replica] ?? app).call("POST", "/v1/billing/usage", { key: gateway, body: { events: bodies } });
            const answers = await Promise.all(
              reports.map((r) =>
                Promise.all(r.twin ? [post(0, r.bodies), post(1, r.bodies)] : [post(r.replica, r.bodies)]),
              ),
            );
            for (const [i, pair] of answers.entries()) {
              for (const a of pair) expect(a.status).toBe(200);
              const [x, y] = pair;
              if (!x || !y) continue;
              // The same report on both replicas at once: each event recorded at most once, both
              // answers naming the same usage row.
              twinsChecked++;
              for (let j = 0; j < (reports[i]?.bodies.length ?? 0); j++) {
                const [a, b] = [x.json.results[j], y.json.results[j]];
                if (a.status === "rejected" || b.status === "rejected") continue;
                expect({ key: a.idempotency_key, same: a.usage_id === b.usage_id }).toEqual({
                  key: a.idempotency_key,
                  same: true,
                });
                expect([a.status, b.status]).not.toEqual(["recorded", "recorded"]);
              }
            }
          }
          expect(await invariants(app, db.sql, orgs)).toEqual([]);
        }),
        { numRuns: 30, seed: 20261203, endOnFailure: true },
      );
      // The runs did make what they attack: transactions of several organizations, holds settled
      // by them, free events beside paid ones in them, and the same report on both replicas.
      expect(twinsChecked).toBeGreaterThan(0);
      const [seen] = await db.sql<{ shared: number; settled: number; free: number; closed_twice: number }[]>`
        select
          (select count(*)::int from ledger_transactions where kind = 'usage' and (metadata->>'organizations')::int > 1) as shared,
          (select count(*)::int from holds h join ledger_transactions t on t.id = h.close_transaction_id
            where (t.metadata->>'organizations')::int > 1) as settled,
          (select count(*)::int from usage_events where cost = 0 and transaction_id is not null) as free,
          (select count(*)::int from usage_events u join holds h on h.id = u.hold_id
            where u.transaction_id is distinct from h.close_transaction_id) as closed_twice`;
      expect(seen?.shared).toBeGreaterThan(0);
      expect(seen?.settled).toBeGreaterThan(0);
      expect(seen?.free).toBeGreaterThan(0);
      expect(seen?.closed_twice).toBeGreaterThan(0);
    } finally {
      await sql2.end();
    }
  });

  it("an organization paging its list while batches of several organizations commit on two replicas sees each transaction once, and every one committed before it began", {
    timeout: 60_000,
  }, async ({ app, db }) => {
    const sql2 = createSql(db.appUrl, { max: 4 });
    const app2 = createTestApp({ sql: sql2, clock, meteringLanes: 2 });
    try {
      const orgs = [await app.createOrg("page-a"), await app.createOrg("page-b"), await app.createOrg("page-c")];
      for (const o of orgs) await app.grant(o.id, "1000");
      const [a] = orgs;
      if (!a) throw new Error("no org");
      let k = 0;
      let writing = true;
      // Writers: reports naming all three organizations, on both replicas at once.
      const writers = Promise.all(
        [app, app2].map(async (replica) => {
          for (let i = 0; i < 40; i++) {
            const events = orgs.map((o) => ({
              idempotency_key: `page-${++k}`,
              org_id: o.id,
              timestamp: clock().toISOString(),
              product: "api",
              quantities: { requests: 1 + (k % 7) },
            }));
            const res = await replica.call("POST", "/v1/billing/usage", { key: a.gatewayKey, body: { events } });
            expect(res.json).toMatchObject({ recorded: 3 });
          }
        }),
      ).finally(() => {
        writing = false;
      });
      // The reader: whole passes through the cursor, one item a page, while the writers run.
      let passesDuringWrites = 0;
      const reader = (async () => {
        while (writing) {
          const before = new Set((await expectedList(db.sql, a.id)).map((t) => t.id));
          const { items, cursors } = await listAll(app, a.orgKey, 1);
          const ids = items.map((t) => t.id);
          expect(new Set(ids).size).toBe(ids.length);
          expect(cursors.every((c, i) => i === 0 || c < (cursors[i - 1] ?? 0n))).toBe(true);
          expect([...before].filter((id) => !ids.includes(id))).toEqual([]);
          if (writing) passesDuringWrites++;
        }
      })();
      await Promise.all([writers, reader]);
      expect(passesDuringWrites).toBeGreaterThan(0);
      expect(await invariants(app, db.sql, orgs)).toEqual([]);
    } finally {
      await sql2.end();
    }
  });
});
