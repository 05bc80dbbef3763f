import fc from "fast-check";
import { describe, expect } from "vitest";
import { MAX_EXPORT_DAYS } from "../../src/billing/exports/export-period.js";
import { manualClock, TEST_ADMIN_KEY, type JsonReply, type TestApp } from "../support/app.js";
import { csvRecords } from "../support/csv.js";
import { appTest as it } from "../support/fixtures.js";
import { expectLedgerConsistent } from "../support/ledger.js";

/**
 * The CSV exports against the JSON endpoints they mirror: the same totals to the nano-USD, the
 * same rows, text a spreadsheet would run as a formula escaped, bad periods refused. Streaming,
 * backpressure and a client that leaves are in export-streaming.test.ts; a million rows through
 * an API process in million-rows.test.ts.
 */
const clock = manualClock(new Date("2026-11-15T12:00:00Z"));
const OCTOBER = "start=2026-10-01&end=2026-11-01";

type Org = Awaited<ReturnType<TestApp["createOrg"]>>;
let seq = 0;
/** Usage events as the gateway reports them. */
async function report(app: TestApp, org: Org, events: Record<string, unknown>[]) {
  const res = await app.call("POST", "/v1/billing/usage", {
    key: org.gatewayKey,
    body: {
      events: events.map((e) => ({
        idempotency_key: `exp-${++seq}`,
        org_id: org.id,
        timestamp: "2026-10-10T10:00:00Z",
        product: "llm",
        model: "zen-pro",
        quantities: { input_tokens: 1000, output_tokens: 500 },
        ...e,
      })),
    },
  });
  expect(res.status, res.text).toBe(200);
  expect(res.json.rejected, res.text).toBe(0);
  return res.json;
}

async function csv(app: TestApp, key: string, path: string) {
  const res = await app.call("GET", path, { key });
  expect(res.status, res.text).toBe(200);
  return { ...csvRecords(res.text), headers: res.headers, text: res.text };
}

const sum = (rows: Record<string, string>[], column: string) => rows.reduce((s, r) => s + BigInt(r[column] || 0), 0n);

/** One usage event a customer could send: a product (and model) of the catalog, its meters, a time in October. */
const UsageEvent = fc.oneof(
  fc.record({
    product: fc.constant("llm"),
    model: fc.constantFrom("zen-pro", "zen-mini"),
    quantities: fc.record({
      input_tokens: fc.integer({ min: 0, max: 5_000_000 }),
      output_tokens: fc.integer({ min: 0, max: 5_000_000 }),
    }),
  }),
  fc.record({
    product: fc.constant("api"),
    model: fc.constant(undefined),
    quantities: fc.record({ requests: fc.integer({ min: 1, max: 10_000 }) }),
  }),
  fc.record({
    product: fc.constant("functions"),
    model: fc.constant(undefined),
    quantities: fc.record({ compute_seconds: fc.integer({ min: 0, max: 100_000 }) }),
  }),
);
const Timed = fc.record({
  event: UsageEvent,
  // October 2026, to the millisecond, and a few events just outside it (late September, early November).
  at: fc.integer({ min: Date.parse("2026-09-30T23:00:00Z"), max: Date.parse("2026-11-01T01:00:00Z") }),
  project: fc.option(fc.constantFrom("web", "batch.jobs", "a/b"), { nil: undefined }),
});

describe("CSV exports (GET /v1/billing/exports/*.csv)", () => {
  it.scoped({ dbOptions: { max: 10 }, appOptions: { clock } });

  it("usage exports total what GET /v1/billing/usage reports for the period, to the nano-USD, for any usage (property)", async ({
    app,
  }) => {
    await fc.assert(
      fc.asyncProperty(fc.array(Timed, { minLength: 1, maxLength: 25 }), async (events) => {
        const org = await app.createOrg("Exporter");
        await app.grant(org.id, "100000");
        await report(
          app,
          org,
          events.map((e) => ({ ...e.event, timestamp: new Date(e.at).toISOString(), project: e.project })),
        );
        const json: JsonReply = (
          await app.call("GET", "/v1/billing/usage?period=2026-10&granularity=day&group_by=product,model", {
            key: org.orgKey,
          })
        ).json;
        expect(json.period).toMatchObject({ start: "2026-10-01T00:00:00.000Z", end: "2026-11-01T00:00:00.000Z" });

        // By day: one row per day, product and model with usage; each is that day's group of the report.
        const byDay = await csv(app, org.orgKey, `/v1/billing/exports/usage.csv?${OCTOBER}&group_by=day`);
        const dayGroups = json.days.flatMap((d: JsonReply) =>
          d.groups.map((g: JsonReply) => ({
            date: d.date,
            product: g.product,
            model: g.model ?? "",
            events: String(g.events),
            cost_nano_usd: g.cost_nano_usd,
            input_tokens: g.quantities.input_tokens ?? "",
            requests: g.quantities.requests ?? "",
          })),
        );
        const dayRows = byDay.records.map((r) => ({
          date: r.date,
          product: r.product,
          model: r.model,
          events: r.events,
          cost_nano_usd: r.cost_nano_usd,
          input_tokens: r.quantity_input_tokens,
          requests: r.quantity_requests,
        }));
        const order = (a: { date?: string; product?: string; model?: string }) => `${a.date} ${a.product} ${a.model}`;
        expect(dayRows).toEqual([...dayGroups].sort((a, b) => order(a).localeCompare(order(b))));
        expect(dayRows.map(order)).toEqual(dayRows.map(order).sort());
        expect(sum(byDay.records, "cost_nano_usd")).toBe(BigInt(json.total_nano_usd));

        // By product and model: the report's products[].models[].
        const byModel = await csv(app, org.orgKey, `/v1/billing/exports/usage.csv?${OCTOBER}&group_by=product_model`);
        const models = json.products.flatMap((p: JsonReply) =>
          p.models.map((m: JsonReply) => [p.product, m.model ?? "", String(m.events), m.cost_nano_usd]),
        );
        expect(byModel.records.map((r) => [r.product, r.model, r.events, r.cost_nano_usd])).toEqual(models);
        expect(sum(byModel.records, "cost_nano_usd")).toBe(BigInt(json.total_nano_usd));

        // Every event: as many as the report counts, costing its total; exact USD beside the nano-USD.
        const byEvent = await csv(app, org.orgKey, `/v1/billing/exports/usage.csv?${OCTOBER}&group_by=event`);
        const inOctober = events.filter(
          (e) => e.at >= Date.parse("2026-10-01T00:00:00Z") && e.at < Date.parse("2026-11-01T00:00:00Z"),
        );
        expect(byEvent.records).toHaveLength(inOctober.length);
        expect(sum(byEvent.records, "cost_nano_usd")).toBe(BigInt(json.total_nano_usd));
        for (const r of byEvent.records) {
          const [whole, fraction = ""] = r.cost_usd!.split(".");
          expect(BigInt(whole!) * 1_000_000_000n + BigInt(fraction.padEnd(9, "0"))).toBe(BigInt(r.cost_nano_usd!));
        }
        expect(sum(byEvent.records, "quantity_input_tokens")).toBe(
          inOctober.reduce(
            (s, e) => s + BigInt("input_tokens" in e.event.quantities ? e.event.quantities.input_tokens : 0),
            0n,
          ),
        );
        expect(byEvent.records.map((r) => r.project).sort()).toEqual(inOctober.map((e) => e.project ?? "").sort());
      }),
      { numRuns: 6 },
    );
  });

  it("an event row carries the event as stored: times, quantities, attribution, hold and exact cost", async ({
    app,
    db,
  }) => {
    const org = await app.createOrg("Detail Co");
    await app.grant(org.id, "10");
    const auth = await app.call("POST", "/v1/billing/authorize", {
      key: org.gatewayKey,
      body: { org_id: org.id, product: "llm", model: "zen-pro", estimate: { input_tokens: 10 } },
    });
    expect(auth.status).toBe(201);
    const reported = await report(app, org, [
      {
        timestamp: "2026-10-31T23:59:59.999Z",
        hold_id: auth.json.hold_id,
        api_key_id: org.orgKeyId,
        project: "web",
        quantities: { input_tokens: 7, output_tokens: 3 },
      },
    ]);
    const { columns, records } = await csv(app, org.orgKey, `/v1/billing/exports/usage.csv?${OCTOBER}&group_by=event`);
    expect(columns.slice(0, 5)).toEqual(["id", "occurred_at", "recorded_at", "product", "model"]);
    expect(columns.slice(-5)).toEqual(["cost_usd", "cost_nano_usd", "api_key_id", "project", "hold_id"]);
    const [stored] = await db.sql<{ id: string; recorded_at: Date; cost: bigint }[]>`
      select id, recorded_at, cost from usage_events where org_id = ${org.id}`;
    expect(records).toEqual([
      {
        id: stored!.id,
        occurred_at: "2026-10-31T23:59:59.999Z",
        recorded_at: stored!.recorded_at.toISOString(),
        product: "llm",
        model: "zen-pro",
        quantity_compute_seconds: "",
        quantity_input_tokens: "7",
        quantity_mb_hours: "",
        quantity_output_tokens: "3",
        quantity_requests: "",
        cost_usd: "0.0000475",
        cost_nano_usd: stored!.cost.toString(),
        api_key_id: org.orgKeyId,
        project: "web",
        hold_id: auth.json.hold_id,
      },
    ]);
    expect(reported.results[0].cost_nano_usd).toBe(stored!.cost.toString());
  });

  it("invoice lines: every line of the invoices overlapping the period, summing to each invoice's subtotal as GET /v1/billing/invoices/{id} shows it", async ({
    app,
    db,
  }) => {
    clock.set(new Date("2026-09-10T10:00:00Z"));
    const org = await app.createOrg("Invoiced Co");
    await app.grant(org.id, "1000");
    await app.call("PUT", `/v1/admin/orgs/${org.id}/subscription`, { key: TEST_ADMIN_KEY, body: { plan_id: "pro" } });
    await report(app, org, [
      { timestamp: "2026-09-10T09:00:00Z" },
      { timestamp: "2026-09-10T09:00:00Z", model: "zen-mini", quantities: { input_tokens: 123_456_789 } },
    ]);
    clock.set(new Date("2026-10-01T00:00:05Z"));
    await app.call("POST", "/v1/admin/cycles/close", { key: TEST_ADMIN_KEY, body: { org_id: org.id } });
    await report(app, org, [
      { timestamp: "2026-10-01T00:00:04Z", product: "api", model: undefined, quantities: { requests: 9 } },
    ]);
    const adjustment = await app.call("POST", `/v1/admin/orgs/${org.id}/adjustments`, {
      key: TEST_ADMIN_KEY,
      headers: { "idempotency-key": "adj-formula" },
      body: { amount: "-1.5", description: '=HYPERLINK("https://evil.example/x","refund")' },
    });
    expect(adjustment.status, adjustment.text).toBe(201);
    clock.set(new Date("2026-11-01T00:00:05Z"));
    await app.call("POST", "/v1/admin/cycles/close", { key: TEST_ADMIN_KEY, body: { org_id: org.id } });
    clock.set(new Date("2026-11-15T12:00:00Z"));

    const list: JsonReply = (await app.call("GET", "/v1/billing/invoices", { key: org.orgKey })).json;
    expect(list.data).toHaveLength(2);
    const invoices: JsonReply[] = await Promise.all(
      [...list.data]
        .reverse()
        .map(async (i: JsonReply) => (await app.call("GET", `/v1/billing/invoices/${i.id}`, { key: org.orgKey })).json),
    );

    // September and October overlap [2026-09-15, 2026-10-15); only October overlaps [2026-10-01, 2026-11-01).
    const both = await csv(app, org.orgKey, "/v1/billing/exports/invoice-lines.csv?start=2026-09-15&end=2026-10-15");
    expect(both.headers.get("content-disposition")).toBe(
      'attachment; filename="invoice-lines-2026-09-15-2026-10-15.csv"',
    );
    const expected = invoices.flatMap((inv) =>
      inv.lines.map((l: JsonReply) => ({
        invoice_id: inv.id,
        invoice_number: inv.number,
        invoice_status: inv.status,
        kind: l.kind,
        product: l.product ?? "",
        model: l.model ?? "",
        amount_nano_usd: l.amount_nano_usd,
        input_tokens: l.quantities.input_tokens ?? "",
      })),
    );
    expect(
      both.records.map((r) => ({
        invoice_id: r.invoice_id,
        invoice_number: r.invoice_number,
        invoice_status: r.invoice_status,
        kind: r.kind,
        product: r.product,
        model: r.model,
        amount_nano_usd: r.amount_nano_usd,
        input_tokens: r.quantity_input_tokens,
      })),
    ).toEqual(expected);
    for (const inv of invoices)
      expect(
        sum(
          both.records.filter((r) => r.invoice_id === inv.id),
          "amount_nano_usd",
        ),
      ).toBe(BigInt(inv.subtotal_nano_usd));
    // The operator's description that starts with "=" is text in the spreadsheet, not a formula;
    // the negative amount stays a number.
    const adj = both.records.find((r) => r.kind === "adjustment");
    expect(adj).toMatchObject({
      description: `'=HYPERLINK("https://evil.example/x","refund")`,
      amount_usd: "-1.5",
      amount_nano_usd: "-1500000000",
    });
    expect(both.text).toContain(`"'=HYPERLINK(""https://evil.example/x"",""refund"")"`);

    const october = await csv(app, org.orgKey, "/v1/billing/exports/invoice-lines.csv?start=2026-10-01&end=2026-11-01");
    expect(new Set(october.records.map((r) => r.invoice_id))).toEqual(new Set([invoices[1].id]));
    const none = await csv(app, org.orgKey, "/v1/billing/exports/invoice-lines.csv?start=2026-12-01&end=2026-12-02");
    expect(none.records).toEqual([]);
    expect(none.columns[0]).toBe("invoice_id");
    await expectLedgerConsistent(db.sql);
  });

  it("the ledger history: the transactions of GET /v1/billing/transactions, oldest first, same ids and exact amounts; text that would run as a formula is escaped", async ({
    app,
  }) => {
    clock.set(new Date("2026-11-15T12:00:00Z"));
    const org = await app.createOrg("Ledger Co");
    await app.grant(org.id, "5", "g1");
    await app.grant(org.id, "0.000000001", "g2", { reason: "-2+3 bonus" });
    await app.grant(org.id, "2", "g3", { reason: "@SUM(A1:A9)" });
    await report(app, org, [{ timestamp: "2026-11-15T11:00:00Z" }, { timestamp: "2026-11-15T11:00:00Z" }]);

    const pages: JsonReply[] = [];
    let cursor: string | null = null;
    do {
      const page: JsonReply = (
        await app.call("GET", `/v1/billing/transactions?limit=2${cursor ? `&cursor=${cursor}` : ""}`, {
          key: org.orgKey,
        })
      ).json;
      pages.push(...page.data);
      cursor = page.next_cursor;
    } while (cursor);

    const exported = await csv(app, org.orgKey, "/v1/billing/exports/transactions.csv?start=2026-11-01&end=2026-12-01");
    expect(exported.columns).toEqual([
      "id",
      "created_at",
      "kind",
      "amount_usd",
      "amount_nano_usd",
      "description",
      "metadata",
    ]);
    expect(exported.records.map((r) => [r.id, r.kind, r.amount_nano_usd, r.amount_usd, r.created_at])).toEqual(
      [...pages].reverse().map((t) => [t.id, t.kind, t.amount_nano_usd, t.amount_usd, t.created_at]),
    );
    expect(sum(exported.records, "amount_nano_usd")).toBe(
      pages.reduce((s: bigint, t: JsonReply) => s + BigInt(t.amount_nano_usd), 0n),
    );
    expect(exported.records.map((r) => r.description)).toEqual(expect.arrayContaining(["'-2+3 bonus", "'@SUM(A1:A9)"]));
    // Spending is negative, and a negative amount is a number, never escaped.
    expect(exported.records.filter((r) => r.kind === "usage").every((r) => r.amount_usd!.startsWith("-"))).toBe(true);
    const balance: JsonReply = (await app.call("GET", "/v1/billing/balance", { key: org.orgKey })).json;
    expect(sum(exported.records, "amount_nano_usd")).toBe(BigInt(balance.balance_nano_usd));

    const before = await csv(app, org.orgKey, "/v1/billing/exports/transactions.csv?start=2026-10-01&end=2026-11-01");
    expect(before.records).toEqual([]);
  });

  it.for<[string, string]>([
    ["group_by=day", "start"],
    [`start=2026-10-01&group_by=day`, "end"],
    [`${OCTOBER}`, "group_by"],
    [`${OCTOBER}&group_by=week`, "group_by"],
    [`${OCTOBER}&group_by=`, "group_by"],
    ["start=2026-11-01&end=2026-10-01&group_by=day", "end"],
    ["start=2026-10-01&end=2026-10-01&group_by=day", "end"],
    ["start=2025-01-01&end=2026-01-03&group_by=event", "end"],
    ["start=2026-02-30&end=2026-03-10&group_by=day", "start"],
    ["start=yesterday&end=2026-03-10&group_by=day", "start"],
    ["start=2026-10-01T00:00:00&end=2026-11-01&group_by=day", "start"],
    ["start=0099-10-01&end=0100-01-01&group_by=day", "start"],
    [`start=2026-10-01&end=${"9".repeat(50)}&group_by=day`, "end"],
  ])("usage.csv?%s: 400 in the envelope naming %s", async ([query, param], { app }) => {
    const org = await app.createOrg();
    const res = await app.call("GET", `/v1/billing/exports/usage.csv?${query}`, { key: org.orgKey });
    expect(res.status, res.text).toBe(400);
    expect(res.headers.get("content-type")).toMatch(/^application\/json/);
    expect(res.json.error).toMatchObject({ code: "invalid_request", param, request_id: expect.any(String) });
  });

  it("periods: timestamps with offsets and exactly the longest period are accepted; one millisecond more is not", async ({
    app,
  }) => {
    const org = await app.createOrg();
    const ok = await app.call(
      "GET",
      `/v1/billing/exports/transactions.csv?start=${encodeURIComponent("2026-10-01T02:00:00+02:00")}&end=2026-11-01T00:00:00.5Z`,
      { key: org.orgKey },
    );
    expect(ok.status, ok.text).toBe(200);
    expect(ok.headers.get("content-disposition")).toBe(
      'attachment; filename="transactions-2026-10-01-2026-11-01T00-00-00-500Z.csv"',
    );
    const end = new Date(Date.parse("2025-06-01T00:00:00Z") + MAX_EXPORT_DAYS * 86_400_000);
    const longest = await app.call(
      "GET",
      `/v1/billing/exports/invoice-lines.csv?start=2025-06-01&end=${end.toISOString()}`,
      { key: org.orgKey },
    );
    expect(longest.status, longest.text).toBe(200);
    const tooLong = await app.call(
      "GET",
      `/v1/billing/exports/invoice-lines.csv?start=2025-06-01&end=${new Date(end.getTime() + 1).toISOString()}`,
      { key: org.orgKey },
    );
    expect(tooLong.status).toBe(400);
    expect(tooLong.json.error.message).toContain(`${MAX_EXPORT_DAYS} days`);
  });

  it("answers text/csv in UTF-8 as an attachment, with the request id; only the key's organization is exported", async ({
    app,
  }) => {
    const a = await app.createOrg("A");
    const b = await app.createOrg("B");
    await app.grant(b.id, "1");
    await report(app, b, [{ timestamp: "2026-10-10T10:00:00Z", project: "b-secret" }]);
    const res = await app.call("GET", `/v1/billing/exports/usage.csv?${OCTOBER}&group_by=event`, {
      key: a.orgKey,
      headers: { "x-request-id": "req_export_0001" },
    });
    expect(res.status).toBe(200);
    expect(res.headers.get("content-type")).toBe("text/csv; charset=utf-8");
    expect(res.headers.get("content-disposition")).toBe('attachment; filename="usage-event-2026-10-01-2026-11-01.csv"');
    expect(res.headers.get("x-request-id")).toBe("req_export_0001");
    expect(res.text).not.toContain("b-secret");
    expect(csvRecords(res.text).records).toEqual([]);
    for (const path of ["usage.csv?group_by=event&", "invoice-lines.csv?", "transactions.csv?"]) {
      const gateway = await app.call("GET", `/v1/billing/exports/${path}${OCTOBER}`, { key: b.gatewayKey });
      expect(gateway.status).toBe(403);
    }
  });

  it("at most EXPORTS_MAX_CONCURRENT (2) exports stream at once per process: a third meanwhile is 429 with Retry-After; a finished one frees its slot", async ({
    app,
  }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "1");
    await report(app, org, [{ timestamp: "2026-10-10T10:00:00Z" }]);
    // A row to send: an export with none is done before its client reads anything.
    const path = `/v1/billing/exports/usage.csv?${OCTOBER}&group_by=event`;
    const open = [
      await app.app.request(path, { headers: { authorization: `Bearer ${org.orgKey}` } }),
      await app.app.request(path, { headers: { authorization: `Bearer ${org.orgKey}` } }),
    ];
    for (const r of open) expect(r.status).toBe(200);
    const third = await app.call("GET", path, { key: org.orgKey });
    expect(third.status).toBe(429);
    expect(third.headers.get("retry-after")).toBe("5");
    expect(third.json.error).toMatchObject({ code: "rate_limited", request_id: expect.any(String) });
    await open[0]!.text();
    await open[1]!.body!.cancel();
    expect((await app.call("GET", path, { key: org.orgKey })).status).toBe(200);
  });
});
