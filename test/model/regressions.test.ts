import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from "vitest";
import { TEST_ADMIN_KEY } from "../support/app.js";
import { paymentIntent, processorId } from "../support/processor.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { inProcessSystem, skipFlushWaits, type OrgHandle, type System } from "./harness.js";
import { checkLedgerFor, snapshot, violations } from "./invariants.js";

/**
 * Counterexamples the model-based test (engine.test.ts) found, shrunk, as plain tests. Each
 * names the seed that found it; "before" is the engine of e1af9bd (before issue 11's fixes).
 * Prices: api $0.0001 per request; zen-mini input $0.00000015 per token (150 nano-USD);
 * zen-pro $0.0000025 per input token, $0.00001 per output token.
 */
const CENT = 10_000_000n;

describe("metering engine: the model's counterexamples", () => {
  let db: TestDatabase;
  let h: ReturnType<typeof inProcessSystem>;
  let org: OrgHandle;
  let seq = 0;
  beforeAll(async () => {
    db = await createTestDatabase({ max: 4 });
    await skipFlushWaits(db);
    h = inProcessSystem(db.sql);
  });
  afterAll(() => db?.drop());

  const at = (seconds: number) => new Date(h.system.now().getTime() + seconds * 1000).toISOString();
  const call: System["call"] = (...args) => h.system.call(...args);
  const grant = (amount: string, extra: Record<string, unknown> = {}, key = `g${++seq}`) =>
    call("POST", `/v1/admin/orgs/${org.id}/credits`, {
      key: TEST_ADMIN_KEY,
      headers: { "idempotency-key": key },
      body: { amount, reason: "r", ...extra },
    });
  const authorize = (body: Record<string, unknown>) =>
    call("POST", "/v1/billing/authorize", { key: org.gatewayKey, body: { org_id: org.id, ...body } });
  const usage = async (event: Record<string, unknown>) => {
    const res = await call("POST", "/v1/billing/usage", {
      key: org.gatewayKey,
      body: { events: [{ idempotency_key: `u${++seq}`, org_id: org.id, timestamp: at(0), ...event }] },
    });
    expect(res.status, res.text).toBe(200);
    return res.json.results[0];
  };
  const balance = async () => {
    const res = await call("GET", "/v1/billing/balance", { key: org.orgKey });
    return {
      balance: BigInt(res.json.balance_nano_usd),
      credits: BigInt(res.json.credits_nano_usd),
      held: BigInt(res.json.held_nano_usd),
    };
  };
  const holdStatus = async (id: string) =>
    (await db.sql<{ status: string }[]>`select status from holds where id = ${id}`)[0]?.status;

  beforeEach(async () => {
    org = (await h.newRun(1)).orgs[0]!;
  });
  afterEach(async () => {
    const ids = [org.id];
    expect([...violations(await snapshot(db.sql, ids), ids), ...(await checkLedgerFor(db.sql, ids))]).toEqual([]);
  });

  it("usage naming a hold past its time is charged in full, the hold ends expired, already_closed, not settled (seed 2)", async () => {
    await grant("0.01");
    const hold = await authorize({
      product: "llm",
      model: "zen-pro",
      estimate: { input_tokens: 1, output_tokens: 1 },
      ttl_seconds: 1,
    });
    expect(hold.status).toBe(201);
    await h.system.advance(1_000); // now == expires_at: past its time
    const result = await usage({
      product: "llm",
      model: "zen-mini",
      quantities: { input_tokens: 1 },
      hold_id: hold.json.hold_id,
    });
    expect(result).toMatchObject({ status: "recorded", cost_nano_usd: "150", hold_outcome: "already_closed" });
    expect(await holdStatus(hold.json.hold_id)).toBe("expired");
    expect(await balance()).toEqual({ balance: CENT - 150n, credits: CENT - 150n, held: 0n });
  });

  it("a settle and an authorization of the same org in one batch return an expired hold's amount once, not twice (issue 11)", async () => {
    await grant("1.00");
    const first = await authorize({ product: "api", estimate: { requests: 125 }, ttl_seconds: 1 }); // $0.0125
    await h.system.advance(1_000);
    const metering = h.system.metering!;
    const now = h.system.now();
    const [used, held] = await Promise.all([
      metering.recordUsage(
        {
          orgId: org.id,
          idempotencyKey: `u${++seq}`,
          occurredAt: now,
          product: "api",
          model: undefined,
          quantities: { requests: 100n },
          holdId: first.json.hold_id,
        },
        now,
      ),
      metering.authorize(
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
    ]);
    expect(used.holdOutcome).toBe("already_closed");
    expect(held.amount).toBe(100_000n);
    // $1 − $0.01 of usage − $0.0001 held
    expect(await balance()).toEqual({
      balance: 100n * CENT - CENT,
      credits: 100n * CENT - CENT - 100_000n,
      held: 100_000n,
    });
  });

  it("a replayed authorization answers the hold's current status, and never a new hold (seed 11; before: no status)", async () => {
    await grant("0.01");
    const body = { product: "api", estimate: { requests: 1 }, ttl_seconds: 1, idempotency_key: "a1" };
    const hold = await authorize(body);
    const replay = await authorize(body);
    expect(replay.status).toBe(200);
    expect(replay.json).toMatchObject({ hold_id: hold.json.hold_id, replayed: true, status: "active" });
    await h.system.advance(1_000);
    expect((await authorize(body)).json).toMatchObject({ hold_id: hold.json.hold_id, status: "expired" });
    expect((await authorize({ ...body, ttl_seconds: 2 })).json.error.code).toBe("idempotency_key_reused");
    expect(await balance()).toEqual({ balance: CENT, credits: CENT, held: 0n });
  });

  it("a grant's key reused after its expiry: 409 for another amount, the first grant for the same (seed 12; before: 400)", async () => {
    const first = await grant("0.01", { expires_at: at(1) }, "g-exp");
    await h.system.advance(2_000);
    const other = await grant("0.02", { expires_at: first.json.expires_at }, "g-exp");
    expect(other.status).toBe(409);
    expect(other.json.error.code).toBe("idempotency_key_reused");
    const same = await grant("0.01", { expires_at: first.json.expires_at }, "g-exp");
    expect(same.status).toBe(200);
    expect(same.json.id).toBe(first.json.id);
  });

  it("a usage key reused with other quantities is refused for that event (seed 13; before: duplicate)", async () => {
    await grant("0.01");
    const first = await usage({ idempotency_key: "u-same", product: "api", quantities: { requests: 1 } });
    expect(first.status).toBe("recorded");
    const again = await usage({ idempotency_key: "u-same", product: "api", quantities: { requests: 1 } });
    expect(again).toMatchObject({ status: "duplicate", usage_id: first.usage_id });
    const other = await usage({ idempotency_key: "u-same", product: "api", quantities: { requests: 2 } });
    expect(other).toMatchObject({ status: "rejected", error: { code: "idempotency_key_reused" } });
    expect(await balance()).toEqual({ balance: CENT - 100_000n, credits: CENT - 100_000n, held: 0n });
  });

  it("a grant whose only hold is past its time expires whole, and the hold shows as credits before the sweep (seed 15; before: credits −150)", async () => {
    await grant("0.01", { expires_at: at(1) });
    const hold = await authorize({ product: "llm", model: "zen-mini", estimate: { input_tokens: 1 }, ttl_seconds: 1 });
    await h.system.advance(2_000);
    expect(await balance()).toEqual({ balance: 0n, credits: 0n, held: 0n }); // the hold is past its time, not swept yet
    expect(await h.system.expireGrants()).toBe(1); // a hold past its time shields nothing
    expect(await balance()).toEqual({ balance: 0n, credits: 0n, held: 0n });
    await h.system.sweepHolds();
    expect(await holdStatus(hold.json.hold_id)).toBe("expired");
    expect(await balance()).toEqual({ balance: 0n, credits: 0n, held: 0n });
  });

  for (const worker of ["after every request", "only at the end"] as const) {
    it(`a hold shields only the grants it could be charged to, worker ${worker} (seed 31)`, async () => {
      const post = async () => {
        if (worker === "after every request") await h.system.expireGrants();
      };
      await grant("0.01", { expires_at: at(1) });
      await grant("0.01", { expires_at: at(3) });
      await h.system.advance(2_000); // the first grant has expired, the second has not
      await post();
      const hold = await authorize({ product: "api", estimate: { requests: 1 }, ttl_seconds: 2 }); // 100,000, taken while only the second is live
      expect(hold.status).toBe(201);
      await post();
      await usage({ product: "llm", model: "zen-pro", quantities: { input_tokens: 1, output_tokens: 999 } }); // 9,992,500 from the second grant
      await post();
      await h.system.advance(1_000); // the second has expired too; the hold still lives
      await post();
      // Spendable before the usage: 2 cents − 1 cent expired − 100,000 held = 9,900,000, so the
      // usage overran by 92,500. The first grant's cent expires whole; the hold shields the
      // second's 7,500 left, not the first's.
      expect(await balance()).toEqual({ balance: 7_500n, credits: -92_500n, held: 100_000n });
    });
  }

  for (const worker of ["before", "after"] as const) {
    it(`usage without a hold after a grant expired is owed, the expiry posted ${worker} it (rules.test.ts; before: $0.00 if posted after)`, async () => {
      await grant("1.00", { expires_at: at(1) });
      await h.system.advance(2_000);
      if (worker === "before") expect(await h.system.expireGrants()).toBe(1);
      await usage({ product: "api", quantities: { requests: 5_000 } }); // $0.50
      if (worker === "after") expect(await h.system.expireGrants()).toBe(1);
      expect(await balance()).toEqual({ balance: -50n * CENT, credits: -50n * CENT, held: 0n });
    });
  }

  it("usage settling a hold draws on the grants live when the hold was taken, then on those live now (seed 8, a model reading)", async () => {
    const paid = await h.system.deliver(
      "payment_intent.succeeded",
      paymentIntent({ id: processorId("pi"), customer: org.customerId, cents: 50 }),
    );
    expect(paid.json.outcome).toBe("credited");
    const hold = await authorize({ product: "api", estimate: { requests: 1 }, ttl_seconds: 2 });
    await h.system.advance(1_000);
    const later = await grant("0.01", { expires_at: at(1) }); // after the hold was taken
    await usage({
      product: "llm",
      model: "zen-pro",
      quantities: { input_tokens: 1, output_tokens: 1 },
      hold_id: hold.json.hold_id,
    }); // 12,500
    const [g] = await db.sql<{ consumed: bigint }[]>`select consumed from credit_grants where id = ${later.json.id}`;
    expect(g!.consumed).toBe(12_500n);
  });

  for (const paid of [0, 10]) {
    for (const order of ["settle first", "expiry posted first"] as const) {
      it(`issue 11's worked example ends at $${paid}.00, nothing held, ${order}${paid ? ", $10 paid besides" : ""}`, async () => {
        if (paid)
          await h.system.deliver(
            "payment_intent.succeeded",
            paymentIntent({ id: processorId("pi"), customer: org.customerId, cents: paid * 100 }),
          );
        await grant("1.00", { expires_at: at(3) });
        await h.system.advance(1_000);
        const hold = await authorize({ product: "api", estimate: { requests: 6_000 }, ttl_seconds: 60 }); // $0.60
        await h.system.advance(3_000);
        const settle = () => usage({ product: "api", quantities: { requests: 5_000 }, hold_id: hold.json.hold_id }); // $0.50
        if (order === "settle first") {
          expect((await settle()).hold_outcome).toBe("released");
          expect(await h.system.expireGrants()).toBe(1);
        } else {
          expect(await h.system.expireGrants()).toBe(0); // the hold taken while the grant was live is still active
          expect((await settle()).hold_outcome).toBe("released");
          expect(await h.system.expireGrants()).toBe(1);
        }
        const dollars = BigInt(paid) * 100n * CENT;
        expect(await balance()).toEqual({ balance: dollars, credits: dollars, held: 0n });
      });
    }
  }
});
