import fc from "fast-check";
import { describe, expect } from "vitest";
import { ErrorEnvelope } from "../../src/http/schemas.js";
import type { TestApp } from "../support/app.js";
import { appTest as it } from "../support/fixtures.js";
import { expectLedgerConsistent } from "../support/ledger.js";

// zen-pro: input 2_500 nano-USD per token, output 10_000 nano-USD per token.
const costOf = (input: number, output: number) => 2_500n * BigInt(input) + 10_000n * BigInt(output);
const GRANT_USD = "0.02";
const GRANT_NANO = 20_000_000n;
const ORGS = 3;
const KEYS = ["k0", "k1", "k2", "k3"];

type Valid = {
  kind: "valid";
  org: number;
  input: number;
  output: number;
  key: string | null;
  /** The same payload written differently: meters in reverse order, counts as strings of digits. */
  reordered: boolean;
  asStrings: boolean;
};
type Invalid = { kind: "invalid"; org: number; flaw: Flaw };
type Spec = Valid | Invalid;

const FLAWS = [
  "unknown_org",
  "unknown_product",
  "unknown_model",
  "negative",
  "absurd",
  "fractional",
  "missing_estimate",
  "missing_org",
  "wrong_type_estimate",
  "wrong_type_org",
  "not_an_object",
  "null",
  "extra_field",
] as const;
type Flaw = (typeof FLAWS)[number];

const validSpec: fc.Arbitrary<Valid> = fc.record({
  kind: fc.constant("valid" as const),
  org: fc.integer({ min: 0, max: ORGS - 1 }),
  input: fc.constantFrom(0, 1000, 2000),
  output: fc.constantFrom(0, 500, 1000),
  key: fc.option(fc.constantFrom(...KEYS), { freq: 3 }),
  reordered: fc.boolean(),
  asStrings: fc.boolean(),
});
const invalidSpec: fc.Arbitrary<Invalid> = fc.record({
  kind: fc.constant("invalid" as const),
  org: fc.integer({ min: 0, max: ORGS - 1 }),
  flaw: fc.constantFrom(...FLAWS),
});
const batchArb = fc.record({
  requests: fc.array(fc.oneof({ weight: 3, arbitrary: validSpec }, { weight: 1, arbitrary: invalidSpec }), {
    minLength: 1,
    maxLength: 14,
  }),
  topUp: fc.option(fc.integer({ min: 0, max: ORGS - 1 }), { freq: 3 }),
});

function bodyOf(spec: Spec, orgIds: string[]): unknown {
  const org_id = orgIds[spec.org];
  const base = { org_id, product: "llm", model: "zen-pro", estimate: { input_tokens: 1000, output_tokens: 500 } };
  if (spec.kind === "valid") {
    const v = (n: number) => (spec.asStrings ? String(n) : n);
    const estimate = spec.reordered
      ? { output_tokens: v(spec.output), input_tokens: v(spec.input) }
      : { input_tokens: v(spec.input), output_tokens: v(spec.output) };
    return { ...base, estimate, ...(spec.key === null ? {} : { idempotency_key: spec.key }) };
  }
  switch (spec.flaw) {
    case "unknown_org":
      return { ...base, org_id: "org_missing" };
    case "unknown_product":
      return { ...base, product: "teleport" };
    case "unknown_model":
      return { ...base, model: "zen-9000" };
    case "negative":
      return { ...base, estimate: { input_tokens: -5, output_tokens: 1 } };
    case "absurd":
      return { ...base, estimate: { input_tokens: "9999999999999999999", output_tokens: 1e300 } };
    case "fractional":
      return { ...base, estimate: { input_tokens: 1.5 } };
    case "missing_estimate":
      return { org_id, product: "llm", model: "zen-pro" };
    case "missing_org":
      return { product: "llm", model: "zen-pro", estimate: base.estimate };
    case "wrong_type_estimate":
      return { ...base, estimate: [1, 2] };
    case "wrong_type_org":
      return { ...base, org_id: 42 };
    case "not_an_object":
      return "authorize please";
    case "null":
      return null;
    case "extra_field":
      return { ...base, amount_nano_usd: "1" };
  }
}

const valid = (org: number, input: number, output: number, key: string | null): Valid => ({
  kind: "valid",
  org,
  input,
  output,
  key,
  reordered: false,
  asStrings: false,
});
/** Run first, so that each outcome is reached whatever the generated batches are. */
const everyOutcome = {
  requests: [
    valid(0, 1000, 500, "k0"),
    valid(0, 1000, 500, "k0"),
    valid(0, 2000, 500, "k0"),
    valid(2, 2000, 1000, null),
    valid(2, 2000, 1000, null),
    { kind: "invalid", org: 0, flaw: "negative" } as const,
    { kind: "invalid", org: 0, flaw: "unknown_org" } as const,
  ],
  topUp: null,
};

describe("POST /v1/billing/authorize/batch, generated batches", () => {
  it.scoped({ dbOptions: { max: 10 } });

  it("keeps order, envelope, idempotency and the balances' bounds over mixed batches", { timeout: 120_000 }, async ({
    app,
    db,
  }) => {
    const orgs: Awaited<ReturnType<TestApp["createOrg"]>>[] = [];
    for (let i = 0; i < ORGS; i++) {
      const org = await app.createOrg(`Prop ${i}`);
      await app.grant(org.id, GRANT_USD);
      orgs.push(org);
    }
    const orgIds = orgs.map((o) => o.id);
    const gatewayKey = orgs[0]?.gatewayKey ?? "";
    // The model: what each organization was granted, its live holds, and each key's first hold.
    const granted = orgs.map(() => GRANT_NANO);
    const held = orgs.map(() => 0n);
    const byKey = new Map<string, { holdId: string; input: number; output: number }>();
    const seen = new Map<number, number>();

    await fc.assert(
      fc.asyncProperty(batchArb, async ({ requests, topUp }) => {
        if (topUp !== null) {
          await app.grant(orgIds[topUp] ?? "", "0.01");
          granted[topUp] = (granted[topUp] ?? 0n) + 10_000_000n;
        }
        const res = await app.call("POST", "/v1/billing/authorize/batch", {
          key: gatewayKey,
          body: { requests: requests.map((r) => bodyOf(r, orgIds)) },
        });
        expect(res.status).toBe(200);
        const results = res.json.results as {
          index: number;
          status: number;
          hold?: { hold_id: string; amount_nano_usd: string; org_id: string };
          error?: unknown;
        }[];
        expect(results).toHaveLength(requests.length);
        requests.forEach((spec, i) => {
          const r = results[i];
          const where = `request ${i}: ${JSON.stringify(spec)} → ${JSON.stringify(r)}`;
          expect(r?.index, where).toBe(i);
          if (!r) return;
          seen.set(r.status, (seen.get(r.status) ?? 0) + 1);
          expect(r.status, where).toBeLessThan(500);
          if (r.status === 200 || r.status === 201) {
            expect(r.error, where).toBeUndefined();
          } else {
            expect(r.hold, where).toBeUndefined();
            expect(ErrorEnvelope.shape.error.strict().safeParse(r.error).success, where).toBe(true);
          }
          if (spec.kind === "invalid") {
            expect([400, 422], where).toContain(r.status);
            return;
          }
          const cost = costOf(spec.input, spec.output);
          const modelKey = spec.key === null ? null : `${spec.org}|${spec.key}`;
          const first = modelKey === null ? undefined : byKey.get(modelKey);
          if (first) {
            if (first.input === spec.input && first.output === spec.output) {
              expect(r.status, where).toBe(200);
              expect(r.hold?.hold_id, where).toBe(first.holdId);
            } else {
              expect(r.status, where).toBe(409);
              expect((r.error as { code: string }).code, where).toBe("idempotency_key_reused");
            }
            return;
          }
          const available = (granted[spec.org] ?? 0n) - (held[spec.org] ?? 0n);
          if (cost <= available) {
            expect(r.status, where).toBe(201);
            expect(r.hold?.org_id, where).toBe(orgIds[spec.org]);
            expect(r.hold?.amount_nano_usd, where).toBe(cost.toString());
            held[spec.org] = (held[spec.org] ?? 0n) + cost;
            if (modelKey !== null && r.hold) {
              byKey.set(modelKey, { holdId: r.hold.hold_id, input: spec.input, output: spec.output });
            }
          } else {
            expect(r.status, where).toBe(402);
            expect((r.error as { code: string }).code, where).toBe("insufficient_balance");
          }
        });
        for (const [i, org] of orgs.entries()) {
          const balance = (await app.call("GET", "/v1/billing/balance", { key: org.orgKey })).json;
          const heldNow = BigInt(balance.held_nano_usd);
          expect(heldNow, `org ${i} held`).toBe(held[i]);
          expect(heldNow, `org ${i} held within its grants`).toBeLessThanOrEqual(granted[i] ?? 0n);
          expect(BigInt(balance.credits_nano_usd) + heldNow, `org ${i} credits + held`).toBe(granted[i]);
          const [row] = await db.sql<{ active: string }[]>`
            select coalesce(sum(amount), 0)::text as active from holds where org_id = ${org.id} and status = 'active'`;
          expect(BigInt(row?.active ?? "-1"), `org ${i} active holds`).toBe(held[i]);
        }
        await expectLedgerConsistent(db.sql);
      }),
      { numRuns: 15, endOnFailure: true, examples: [[everyOutcome]] },
    );
    // The generated batches did reach each outcome: held, replayed, refused, reused, invalid.
    for (const status of [201, 200, 402, 409, 400, 422])
      expect(seen.get(status), `status ${status} seen`).toBeGreaterThan(0);
    await expectLedgerConsistent(db.sql);
  });

  it("gives racing batches that repeat keys one hold per key", { timeout: 120_000 }, async ({ app, db }) => {
    const org = await app.createOrg("Racing");
    await app.grant(org.id, "100.00");
    let expectedHeld = 0n;
    const used = new Set<string>();
    await fc.assert(
      fc.asyncProperty(
        fc.integer({ min: 2, max: 4 }),
        fc.array(fc.constantFrom(...KEYS), { minLength: 1, maxLength: 8 }),
        fc.integer({ min: 0, max: 5 }),
        async (copies, keys, salt) => {
          const body = (key: string) => ({
            org_id: org.id,
            product: "llm",
            model: "zen-pro",
            estimate: { input_tokens: 1000, output_tokens: 500 },
            idempotency_key: `${salt}-${key}`,
          });
          const replies = await Promise.all(
            Array.from({ length: copies }, () =>
              app.call("POST", "/v1/billing/authorize/batch", {
                key: org.gatewayKey,
                body: { requests: keys.map(body) },
              }),
            ),
          );
          const holds = new Map<string, Set<string>>();
          const fresh = new Map<string, number>();
          for (const reply of replies) {
            expect(reply.status).toBe(200);
            for (const [i, r] of (reply.json.results as { status: number; hold?: { hold_id: string } }[]).entries()) {
              const key = `${salt}-${keys[i]}`;
              expect([200, 201], JSON.stringify(r)).toContain(r.status);
              holds.set(key, (holds.get(key) ?? new Set()).add(r.hold?.hold_id ?? ""));
              if (r.status === 201) fresh.set(key, (fresh.get(key) ?? 0) + 1);
            }
          }
          for (const [key, ids] of holds) {
            expect(ids.size, key).toBe(1);
            // A key used in an earlier run replays everywhere; a new one is held exactly once.
            expect(fresh.get(key) ?? 0, key).toBe(used.has(key) ? 0 : 1);
          }
          for (const key of holds.keys()) used.add(key);
          const [row] = await db.sql<{ active: string }[]>`
            select coalesce(sum(amount), 0)::text as active from holds where org_id = ${org.id} and status = 'active'`;
          expectedHeld += BigInt([...fresh.values()].length) * 7_500_000n;
          expect(BigInt(row?.active ?? "-1")).toBe(expectedHeld);
        },
      ),
      { numRuns: 15, endOnFailure: true },
    );
    await expectLedgerConsistent(db.sql);
  });
});
