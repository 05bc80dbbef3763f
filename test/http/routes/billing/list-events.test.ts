import { describe, expect } from "vitest";
import { emitEvent } from "../../../../src/billing/events/emit.js";
import { manualClock } from "../../../support/app.js";
import { appTest as it } from "../../../support/fixtures.js";

describe("GET /v1/billing/events (listEvents)", () => {
  const clock = manualClock();
  it.scoped({ appOptions: { clock } });

  it("pages the org's events newest first, filters by type, and shows no other org's", async ({ app, db }) => {
    const org = await app.createOrg();
    const other = await app.createOrg("Other");
    const types = ["test.ping", "balance.low", "test.ping", "invoice.paid", "test.ping"] as const;
    for (const [i, type] of types.entries())
      await db.appSql.begin((tx) =>
        emitEvent(tx, { orgId: org.id, type, factKey: `page-${i}`, data: { i }, at: new Date(clock().getTime() + i) }),
      );
    await db.appSql.begin((tx) =>
      emitEvent(tx, { orgId: other.id, type: "test.ping", factKey: "other", data: {}, at: clock() }),
    );

    const list = (query: string) => app.call("GET", `/v1/billing/events${query}`, { key: org.orgKey });
    const first = await list("?limit=2");
    expect(first.status).toBe(200);
    expect(first.json.data.map((e: { data: { i: number } }) => e.data.i)).toEqual([4, 3]);
    expect(first.json.data[0]).toEqual({
      id: expect.stringMatching(/^evt_/),
      type: "test.ping",
      timestamp: new Date(clock().getTime() + 4).toISOString(),
      data: { i: 4 },
    });
    expect(first.json.has_more).toBe(true);
    const second = await list(`?limit=2&cursor=${first.json.next_cursor}`);
    expect(second.json.data.map((e: { data: { i: number } }) => e.data.i)).toEqual([2, 1]);
    const third = await list(`?limit=2&cursor=${second.json.next_cursor}`);
    expect(third.json).toMatchObject({ has_more: false, next_cursor: null });
    expect(third.json.data.map((e: { data: { i: number } }) => e.data.i)).toEqual([0]);

    const pings = await list("?type=test.ping&limit=2");
    expect(pings.json.data.map((e: { data: { i: number } }) => e.data.i)).toEqual([4, 2]);
    const rest = await list(`?type=test.ping&limit=2&cursor=${pings.json.next_cursor}`);
    expect(rest.json.data.map((e: { data: { i: number } }) => e.data.i)).toEqual([0]);
    const two = await list("?type=balance.low,invoice.paid");
    expect(two.json.data.map((e: { type: string }) => e.type)).toEqual(["invoice.paid", "balance.low"]);
    const none = await list("?type=deposit.credited");
    expect(none.json).toEqual({ data: [], has_more: false, next_cursor: null });
  });

  it.for([
    ["?type=balance.nope", "type"],
    ["?type=", "type"],
    ["?type=test.ping,,", "type"],
    ["?limit=0", "limit"],
    ["?limit=101", "limit"],
    ["?limit=abc", "limit"],
    ["?cursor=garbage", "cursor"],
  ] as const)("%s is a 400 naming %s", async ([query, param], { app }) => {
    const org = await app.createOrg();
    const res = await app.call("GET", `/v1/billing/events${query}`, { key: org.orgKey });
    expect(res.status).toBe(400);
    expect(res.json.error).toMatchObject({ code: "invalid_request", param });
  });

  it("needs an org key", async ({ app }) => {
    const org = await app.createOrg();
    expect((await app.call("GET", "/v1/billing/events")).status).toBe(401);
    expect((await app.call("GET", "/v1/billing/events", { key: org.gatewayKey })).status).toBe(403);
  });
});
