import fc from "fast-check";
import { describe, expect } from "vitest";
import type { TestApp } from "../../../support/app.js";
import { appTest as it } from "../../../support/fixtures.js";

const NOW = new Date("2026-11-15T12:00:00Z");

type Line = { cost_nano_usd: string; events: number; quantities: Record<string, string> };
const nano = (lines: Line[]) => lines.reduce((s, l) => s + BigInt(l.cost_nano_usd), 0n);
const count = (lines: Line[]) => lines.reduce((s, l) => s + l.events, 0);

describe("GET /v1/billing/usage (getUsage): attribution, group_by and granularity", () => {
  it.scoped({ dbOptions: { max: 10 }, appOptions: { clock: () => NOW } });

  let seq = 0;
  const event = (orgId: string, extra: Record<string, unknown> = {}) => ({
    idempotency_key: `attr-${++seq}`,
    org_id: orgId,
    timestamp: "2026-11-15T11:59:00Z",
    product: "llm",
    model: "zen-pro",
    quantities: { input_tokens: 1000, output_tokens: 500 },
    ...extra,
  });
  const report = (app: TestApp, key: string, events: unknown[]) =>
    app.call("POST", "/v1/billing/usage", { key, body: { events } });

  it.for<[string]>([
    ["group_by=color"],
    ["group_by="],
    ["group_by=key,key"],
    ["group_by=key,"],
    ["group_by=KEY"],
    [`group_by=${"product,".repeat(20)}model`],
    ["granularity=week"],
    ["granularity="],
    ["granularity=day&group_by=nope"],
  ])("refuses ?%s: 400 in the error envelope", async ([query], { app }) => {
    const org = await app.createOrg();
    const res = await app.call("GET", `/v1/billing/usage?${query}`, { key: org.orgKey });
    expect(res.status).toBe(400);
    expect(res.json.error).toMatchObject({ type: "invalid_request_error", code: expect.any(String) });
    expect(["group_by", "granularity"]).toContain(res.json.error.param);
  });

  it.for<[unknown]>([[""], ["has space"], ["-leading-dash"], ["x".repeat(65)], ["émoji"], [42], [null]])(
    "refuses project %j: the event alone is rejected naming project, and authorize answers 400",
    async ([project], { app }) => {
      const org = await app.createOrg();
      await app.grant(org.id, "1");
      const res = await report(app, org.gatewayKey, [event(org.id, { project }), event(org.id, { project: "ok-1" })]);
      expect(res.status).toBe(200);
      expect(res.json).toMatchObject({ recorded: 1, rejected: 1 });
      expect(res.json.results[0]).toMatchObject({ status: "rejected", error: { param: "project" } });
      const auth = await app.call("POST", "/v1/billing/authorize", {
        key: org.gatewayKey,
        body: { org_id: org.id, product: "llm", model: "zen-pro", estimate: { input_tokens: 10 }, project },
      });
      expect(auth.status).toBe(400);
      expect(auth.json.error.param).toBe("project");
    },
  );

  it("an api_key_id of another organization, or of none, is refused per event (422 unknown_api_key) and by authorize; nothing is charged", async ({
    app,
    db,
  }) => {
    const a = await app.createOrg("A");
    const b = await app.createOrg("B");
    await app.grant(a.id, "1");
    const res = await report(app, a.gatewayKey, [
      event(a.id, { api_key_id: b.orgKeyId }),
      event(a.id, { api_key_id: "key_doesnotexist" }),
      event(a.id, { api_key_id: a.orgKeyId, project: "web" }),
    ]);
    expect(res.json).toMatchObject({ recorded: 1, rejected: 2 });
    for (const r of res.json.results.slice(0, 2))
      expect(r).toMatchObject({ status: "rejected", error: { code: "unknown_api_key", param: "api_key_id" } });
    const usage = (await app.call("GET", "/v1/billing/usage", { key: a.orgKey })).json;
    expect(usage.total_nano_usd).toBe(res.json.results[2].cost_nano_usd);
    const auth = await app.call("POST", "/v1/billing/authorize", {
      key: a.gatewayKey,
      body: { org_id: a.id, product: "llm", model: "zen-pro", estimate: { input_tokens: 10 }, api_key_id: b.orgKeyId },
    });
    expect(auth.status).toBe(422);
    expect(auth.json.error).toMatchObject({ code: "unknown_api_key", param: "api_key_id" });
    const ok = await app.call("POST", "/v1/billing/authorize", {
      key: a.gatewayKey,
      body: {
        org_id: a.id,
        product: "llm",
        model: "zen-pro",
        estimate: { input_tokens: 10 },
        api_key_id: a.orgKeyId,
        project: "web",
      },
    });
    expect(ok.status).toBe(201);
    const [hold] = await db.sql`select api_key_id, project from holds where id = ${ok.json.hold_id}`;
    expect(hold).toEqual({ api_key_id: a.orgKeyId, project: "web" });
    // The attribution is part of the idempotent payload: the same key with another project is refused.
    const body = {
      org_id: a.id,
      product: "llm",
      model: "zen-pro",
      estimate: { input_tokens: 10 },
      idempotency_key: "auth-attr",
    };
    expect(
      (await app.call("POST", "/v1/billing/authorize", { key: a.gatewayKey, body: { ...body, project: "web" } }))
        .status,
    ).toBe(201);
    expect(
      (await app.call("POST", "/v1/billing/authorize", { key: a.gatewayKey, body: { ...body, project: "api" } }))
        .status,
    ).toBe(409);
    const again = await report(app, a.gatewayKey, [
      {
        ...event(a.id, { api_key_id: a.orgKeyId, project: "web" }),
        idempotency_key: res.json.results[2].idempotency_key,
        timestamp: "2026-11-15T11:59:00Z",
      },
    ]);
    expect(again.json.duplicates).toBe(1);
    const other = await report(app, a.gatewayKey, [
      {
        ...event(a.id, { api_key_id: a.orgKeyId, project: "api" }),
        idempotency_key: res.json.results[2].idempotency_key,
      },
    ]);
    expect(other.json.results[0]).toMatchObject({ status: "rejected", error: { code: "idempotency_key_reused" } });
  });

  it("without the new parameters the report has exactly its former fields; groups by key keep a revoked key's history", async ({
    app,
  }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "10");
    const ci = await app.call("POST", "/v1/billing/keys", { key: org.orgKey, body: { name: "CI" } });
    expect(ci.status).toBe(201);
    await report(app, org.gatewayKey, [
      event(org.id, { api_key_id: ci.json.id, project: "ci" }),
      event(org.id, { api_key_id: ci.json.id, project: "ci", timestamp: "2026-11-02T00:00:00Z" }),
      event(org.id, {}),
    ]);
    const plain = (await app.call("GET", "/v1/billing/usage", { key: org.orgKey })).json;
    expect(Object.keys(plain)).toEqual(["period", "currency", "total", "total_usd", "total_nano_usd", "products"]);
    expect(Object.keys(plain.products[0])).toEqual([
      "product",
      "quantities",
      "cost",
      "cost_usd",
      "cost_nano_usd",
      "events",
      "models",
    ]);

    expect((await app.call("DELETE", `/v1/billing/keys/${ci.json.id}`, { key: org.orgKey })).status).toBeLessThan(300);
    const byKey = (await app.call("GET", "/v1/billing/usage?group_by=key,project&granularity=day", { key: org.orgKey }))
      .json;
    expect(byKey.group_by).toEqual(["key", "project"]);
    expect(
      byKey.groups.map((g: { key: string | null; project: string | null; events: number }) => [
        g.key,
        g.project,
        g.events,
      ]),
    ).toEqual([
      [ci.json.id, "ci", 2],
      [null, null, 1],
    ]);
    expect(byKey.days).toHaveLength(30);
    expect(byKey.days[1]).toMatchObject({
      date: "2026-11-02",
      events: 1,
      groups: [{ key: ci.json.id, project: "ci", events: 1 }],
    });
    expect(byKey.days[0]).toMatchObject({
      date: "2026-11-01",
      events: 0,
      cost_nano_usd: "0",
      quantities: {},
      groups: [],
    });
    expect(byKey.products).toEqual(plain.products);
  });

  it("property: daily buckets sum to the period's totals, grouped totals to the ungrouped total, and that to the ledger's usage debits", async ({
    app,
    db,
  }) => {
    const events = fc.array(
      fc.record({
        day: fc.integer({ min: 1, max: 15 }),
        second: fc.integer({ min: 0, max: 86_399 }),
        kind: fc.constantFrom(
          { product: "llm", model: "zen-pro", meters: ["input_tokens", "output_tokens"] },
          { product: "llm", model: "zen-mini", meters: ["input_tokens", "output_tokens"] },
          { product: "api", model: undefined, meters: ["requests"] },
          { product: "storage", model: undefined, meters: ["mb_hours"] },
        ),
        amount: fc.integer({ min: 0, max: 5_000_000 }),
        key: fc.integer({ min: 0, max: 2 }),
        project: fc.constantFrom(undefined, "web", "ci", "batch.jobs"),
      }),
      { minLength: 1, maxLength: 40 },
    );
    await fc.assert(
      fc.asyncProperty(events, async (generated) => {
        const org = await app.createOrg();
        await app.grant(org.id, "100000");
        const second = await app.call("POST", "/v1/billing/keys", { key: org.orgKey, body: { name: "second" } });
        const keys = [undefined, org.orgKeyId, second.json.id as string];
        const body = generated.map((g) => {
          const at = new Date(Date.UTC(2026, 10, g.day, 0, 0, g.second));
          return event(org.id, {
            timestamp: at > NOW ? NOW.toISOString() : at.toISOString(),
            product: g.kind.product,
            model: g.kind.model,
            quantities: Object.fromEntries(g.kind.meters.map((m) => [m, g.amount])),
            ...(keys[g.key] ? { api_key_id: keys[g.key] } : {}),
            ...(g.project ? { project: g.project } : {}),
          });
        });
        const res = await report(app, org.gatewayKey, body);
        expect(res.json.recorded).toBe(generated.length);

        const [ledger] = await db.sql<{ spent: string }[]>`
          select coalesce(-sum(e.amount), 0)::text as spent from ledger_entries e join ledger_transactions x on x.id = e.transaction_id
          where x.kind = 'usage' and e.account_id = ${`org:${org.id}:credits`}`;
        const plain = (await app.call("GET", "/v1/billing/usage", { key: org.orgKey })).json;
        const total = BigInt(plain.total_nano_usd);
        expect(total).toBe(BigInt(ledger!.spent));
        expect(nano(plain.products)).toBe(total);

        for (const groupBy of ["product", "model", "key", "project", "key,project", "product,model,key,project"]) {
          const r = (
            await app.call("GET", `/v1/billing/usage?group_by=${groupBy}&granularity=day`, { key: org.orgKey })
          ).json;
          expect(r.total_nano_usd).toBe(plain.total_nano_usd);
          expect(r.products).toEqual(plain.products);
          expect(nano(r.groups)).toBe(total);
          expect(count(r.groups)).toBe(generated.length);
          expect(nano(r.days)).toBe(total);
          expect(count(r.days)).toBe(generated.length);
          for (const d of r.days) expect(nano(d.groups)).toBe(BigInt(d.cost_nano_usd));
          // Every meter's quantity too: groups and days each sum to the products' sums.
          const meters = (lines: Line[]) => {
            const m: Record<string, bigint> = {};
            for (const l of lines) for (const [k, v] of Object.entries(l.quantities)) m[k] = (m[k] ?? 0n) + BigInt(v);
            return m;
          };
          expect(meters(r.groups)).toEqual(meters(plain.products));
          expect(meters(r.days)).toEqual(meters(plain.products));
        }
        const byKey = (await app.call("GET", "/v1/billing/usage?group_by=key", { key: org.orgKey })).json;
        for (const [i, id] of keys.entries()) {
          const expected = generated.filter((g) => g.key === i).length;
          const line = byKey.groups.find((g: { key: string | null }) => g.key === (id ?? null));
          expect(line?.events ?? 0).toBe(expected);
        }
      }),
      { numRuns: 12 },
    );
  });
});
