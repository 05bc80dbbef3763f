import fc from "fast-check";
import { describe, expect } from "vitest";
import { manualClock, type JsonReply, type TestApp } from "../support/app.js";
import { csvRecords } from "../support/csv.js";
import { appTest as it } from "../support/fixtures.js";

/**
 * The usage export grouped by one dimension (`group_by=product|model|key|project`), what the
 * billing portal's Cost view downloads: row for row the usage report's `groups` for the same
 * period and grouping, to the nano-USD, for any usage (the browser test downloads it with a portal session).
 */
const clock = manualClock(new Date("2026-11-15T12:00:00Z"));
const OCTOBER = "start=2026-10-01T00:00:00.000Z&end=2026-11-01T00:00:00.000Z";
const DIMENSIONS = ["product", "model", "key", "project"] as const;

type Org = Awaited<ReturnType<TestApp["createOrg"]>>;
let seq = 0;

const UsageEvent = fc.record({
  kind: fc.constantFrom(
    { product: "llm", model: "zen-pro" },
    { product: "llm", model: "zen-mini" },
    { product: "api" },
    { product: "functions" },
  ),
  amount: fc.integer({ min: 1, max: 2_000_000 }),
  at: fc.integer({ min: Date.parse("2026-09-30T23:00:00Z"), max: Date.parse("2026-11-01T01:00:00Z") }),
  project: fc.option(fc.constantFrom("web", "batch.jobs", "a/b"), { nil: undefined }),
  withKey: fc.boolean(),
});

const quantities = (product: string, amount: number) =>
  product === "llm"
    ? { input_tokens: amount, output_tokens: Math.floor(amount / 3) }
    : product === "api"
      ? { requests: 1 + (amount % 5000) }
      : { compute_seconds: amount % 100_000 };

type Event = typeof UsageEvent extends fc.Arbitrary<infer T> ? T : never;

async function report(app: TestApp, org: Org, events: Event[]) {
  const res = await app.call("POST", "/v1/billing/usage", {
    key: org.gatewayKey,
    body: {
      events: events.map((e) => ({
        idempotency_key: `dim-${++seq}`,
        org_id: org.id,
        timestamp: new Date(e.at).toISOString(),
        ...e.kind,
        quantities: quantities(e.kind.product, e.amount),
        ...(e.project ? { project: e.project } : {}),
        ...(e.withKey ? { api_key_id: org.orgKeyId } : {}),
      })),
    },
  });
  expect(res.status, res.text).toBe(200);
  expect(res.json.rejected, res.text).toBe(0);
}

describe("usage export by one dimension (GET /v1/billing/exports/usage.csv?group_by=product|model|key|project)", () => {
  it.scoped({ dbOptions: { max: 10 }, appOptions: { clock } });

  it("is the usage report's groups for the same period and grouping, row for row (property)", async ({ app }) => {
    await fc.assert(
      fc.asyncProperty(fc.array(UsageEvent, { minLength: 0, maxLength: 20 }), async (events) => {
        const org = await app.createOrg("Dimensions");
        await app.grant(org.id, "100000");
        if (events.length) await report(app, org, events);
        for (const by of DIMENSIONS) {
          const json: JsonReply = (
            await app.call("GET", `/v1/billing/usage?period=2026-10&group_by=${by}`, { key: org.orgKey })
          ).json;
          const res = await app.call("GET", `/v1/billing/exports/usage.csv?${OCTOBER}&group_by=${by}`, {
            key: org.orgKey,
          });
          expect(res.status, res.text).toBe(200);
          expect(res.headers.get("content-type")).toMatch(/^text\/csv/);
          const { records } = csvRecords(res.text);
          const column = by === "key" ? "api_key_id" : by;
          const expected = json.groups.map((g: JsonReply) => {
            const value = g[by] ?? "";
            return {
              value,
              events: String(g.events),
              cost_nano_usd: g.cost_nano_usd,
              input_tokens: g.quantities.input_tokens ?? "",
              requests: g.quantities.requests ?? "",
            };
          });
          expect(
            records.map((r) => ({
              value: r[column],
              events: r.events,
              cost_nano_usd: r.cost_nano_usd,
              input_tokens: r.quantity_input_tokens,
              requests: r.quantity_requests,
            })),
          ).toEqual(expected);
          const total = records.reduce((s, r) => s + BigInt(r.cost_nano_usd ?? "0"), 0n);
          expect(total).toBe(BigInt(json.total_nano_usd));
        }
      }),
      { numRuns: 12 },
    );
  });

  it("refuses an unknown grouping with a 400 in the envelope", async ({ app }) => {
    const org = await app.createOrg("Bad grouping");
    const res = await app.call("GET", `/v1/billing/exports/usage.csv?${OCTOBER}&group_by=customer`, {
      key: org.orgKey,
    });
    expect(res.status).toBe(400);
    expect(res.json.error.code).toBe("invalid_request");
  });
});
