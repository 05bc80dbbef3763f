import fc from "fast-check";
import { describe, expect } from "vitest";
import { GatewayClient, GatewayConnectionError, GatewayError, type Hold } from "../../client/index.js";
import { type Fault, faultProxyTest } from "../support/fault-proxy.js";
import { expectLedgerConsistent } from "../support/ledger.js";

// Generated batches of the gateway's calls through generated network faults (client/gateway.ts
// against the real app). The invariants, whatever the faults:
// - every call is answered: a hold or usage result of its own organization, or an error that says
//   truly whether calling again is safe (GatewayConnectionError.keyed = the call had a key);
// - one hold per (organization, key), one usage per (organization, key), no hold settled twice;
// - a call without a key that was answered has one hold; one that failed has at most one (unless
//   the network itself sent its request twice: no API can tell that from two calls);
// - the ledger balances, and each organization's balance is its grant less its usage.

const it = faultProxyTest;

/** zen-pro's price: 2,500 nano-USD an input token, 10,000 an output token. */
const price = (q: { input_tokens: number; output_tokens: number }) =>
  BigInt(q.input_tokens) * 2_500n + BigInt(q.output_tokens) * 10_000n;

const TIMEOUT_MS = 150;
const fault: fc.Arbitrary<Fault> = fc.oneof(
  fc.constant<Fault>({ kind: "pass" }),
  fc.constant<Fault>({ kind: "resetBefore" }),
  fc.constant<Fault>({ kind: "resetAfter" }),
  fc.constant<Fault>({ kind: "delay", ms: TIMEOUT_MS * 3 }),
  fc.constantFrom(502, 503, 504).map((code): Fault => ({ kind: "status", code })),
  fc.constantFrom(502, 503, 504).map((code): Fault => ({ kind: "statusAfter", code })),
  fc.constant<Fault>({ kind: "truncate" }),
  fc.constant<Fault>({ kind: "split", chunk: 7 }),
  fc.constant<Fault>({ kind: "twice" }),
  fc.constant<Fault>({ kind: "replace", body: "{}" }),
);
const call = fc.record({
  org: fc.nat(2),
  keyed: fc.boolean(),
  key: fc.nat(5), // few keys: repeated within and across batches, with the same or another payload
  estimate: fc.record({
    input_tokens: fc.integer({ min: 1, max: 5000 }),
    output_tokens: fc.integer({ min: 0, max: 500 }),
  }),
});

describe("GatewayClient, generated calls through generated faults", () => {
  it.scoped({ dbOptions: { max: 10 } });

  it("answers every call truly and keeps the money rules", async ({ app, proxy, db }) => {
    const orgs = await Promise.all([app.createOrg("A"), app.createOrg("B"), app.createOrg("C")]);
    for (const o of orgs) await app.grant(o.id, "1000.00");
    const unkeyedHolds = async () => {
      const [row] = await db.sql<{ n: number }[]>`select count(*)::int as n from holds where idempotency_key is null`;
      return row?.n ?? 0;
    };
    /** A client whose next requests meet `faults`, in order (the rest pass). */
    const clientThrough = (faults: Fault[], retries: number, maxBatch: number) => {
      proxy.clear();
      proxy.next(...faults);
      return new GatewayClient({
        baseUrl: proxy.url,
        key: orgs[0]!.gatewayKey,
        timeoutMs: TIMEOUT_MS,
        retries,
        maxBatch,
      });
    };
    let run = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.array(call, { minLength: 1, maxLength: 12 }), { minLength: 1, maxLength: 4 }),
        fc.array(fault, { maxLength: 8 }),
        fc.nat(3),
        async (batches, faults, retries) => {
          run++;
          const client = clientThrough(faults, retries, 5);
          const holdOfKey = new Map<string, string>();
          const before = await unkeyedHolds();
          let unkeyedAnswered = 0;
          let unkeyedCalls = 0;
          try {
            for (const batch of batches) {
              const calls = batch.map((c) => ({ ...c, orgId: orgs[c.org]!.id, key: `run${run}-key${c.key}` }));
              const answers = await Promise.allSettled(
                calls.map((c) =>
                  client.authorize({
                    org_id: c.orgId,
                    product: "llm",
                    model: "zen-pro",
                    estimate: c.estimate,
                    ...(c.keyed ? { idempotency_key: c.key } : {}),
                  }),
                ),
              );
              for (const [i, answer] of answers.entries()) {
                const c = calls[i]!;
                const what = JSON.stringify(c);
                if (!c.keyed) unkeyedCalls++;
                if (answer.status === "fulfilled") {
                  const hold: Hold = answer.value;
                  expect(hold.org_id, what).toBe(c.orgId);
                  if (!hold.replayed) expect(hold.amount_nano_usd, what).toBe(price(c.estimate).toString());
                  if (c.keyed) {
                    const id = `${c.orgId}/${c.key}`;
                    expect(hold.hold_id, what).toBe(holdOfKey.get(id) ?? hold.hold_id);
                    holdOfKey.set(id, hold.hold_id);
                  } else unkeyedAnswered++;
                } else if (answer.reason instanceof GatewayConnectionError) {
                  expect(answer.reason.keyed, what).toBe(c.keyed);
                } else {
                  // The one refusal these calls can meet: a key reused with another estimate.
                  expect(answer.reason, what).toBeInstanceOf(GatewayError);
                  expect([(answer.reason as GatewayError).code, c.keyed], what).toEqual([
                    "idempotency_key_reused",
                    true,
                  ]);
                }
              }
            }
          } finally {
            await client.close();
          }
          const made = (await unkeyedHolds()) - before;
          expect(made).toBeGreaterThanOrEqual(unkeyedAnswered);
          if (!faults.some((f) => f.kind === "twice")) expect(made).toBeLessThanOrEqual(unkeyedCalls);
          const twice = await db.sql`
            select org_id, idempotency_key from holds where idempotency_key is not null
            group by 1, 2 having count(*) > 1`;
          expect(twice).toEqual([]);
          await expectLedgerConsistent(db.sql);
        },
      ),
      { numRuns: Number(process.env.GENERATED_RUNS ?? 40) },
    );

    // Every hold still active, settled twice under the same key, through generated faults.
    const active = await db.sql<{ id: string; org_id: string }[]>`
      select id, org_id from holds where status = 'active' order by id`;
    await fc.assert(
      fc.asyncProperty(fc.array(fault, { maxLength: 10 }), fc.nat(3), async (faults, retries) => {
        const client = clientThrough(faults, retries, 7);
        const timestamp = new Date().toISOString();
        const holds = active.splice(0, 20);
        const settle = (h: { id: string; org_id: string }) =>
          client.settle(h.id, {
            idempotency_key: `usage-${h.id}`,
            org_id: h.org_id,
            product: "llm",
            model: "zen-pro",
            timestamp,
            quantities: { input_tokens: 10 },
          });
        try {
          const answers = await Promise.allSettled(holds.flatMap((h) => [settle(h), settle(h)]));
          for (const [i, answer] of answers.entries()) {
            const h = holds[Math.floor(i / 2)]!;
            if (answer.status === "fulfilled")
              expect(answer.value).toMatchObject({
                hold_id: h.id,
                idempotency_key: `usage-${h.id}`,
                cost_nano_usd: "25000",
              });
            else {
              expect(answer.reason).toBeInstanceOf(GatewayConnectionError);
              expect((answer.reason as GatewayConnectionError).keyed).toBe(true);
            }
          }
        } finally {
          await client.close();
        }
        expect(
          await db.sql`select org_id, idempotency_key from usage_events group by 1, 2 having count(*) > 1`,
        ).toEqual([]);
        expect(
          await db.sql`select hold_id from usage_events where hold_id is not null group by 1 having count(*) > 1`,
        ).toEqual([]);
        await expectLedgerConsistent(db.sql);
      }),
      { numRuns: Number(process.env.GENERATED_RUNS ?? 40) / 2 },
    );

    for (const o of orgs) {
      const balance = (await app.call("GET", "/v1/billing/balance", { key: o.orgKey })).json as {
        balance_nano_usd: string;
        held_nano_usd: string;
      };
      const [usage] = await db.sql<{ cost: string; held: string }[]>`
        select (select coalesce(sum(cost), 0) from usage_events where org_id = ${o.id})::text as cost,
               (select coalesce(sum(amount), 0) from holds where org_id = ${o.id} and status = 'active')::text as held`;
      expect(BigInt(balance.balance_nano_usd)).toBe(1_000_000_000_000n - BigInt(usage!.cost));
      expect(balance.held_nano_usd).toBe(usage!.held);
    }
  }, 600_000);
});
