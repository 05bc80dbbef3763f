import { describe, expect } from "vitest";
import { manualClock } from "../../../support/app.js";
import { appTest as it } from "../../../support/fixtures.js";

describe("GET /v1/billing/transactions (listTransactions)", () => {
  const clock = manualClock();
  it.scoped({ appOptions: { clock } });

  it("pages the ledger history newest first with a cursor", async ({ app }) => {
    const org = await app.createOrg();
    for (let i = 1; i <= 5; i++) await app.grant(org.id, `${i}`, `page-${i}`);
    const first = await app.call("GET", "/v1/billing/transactions?limit=2", { key: org.orgKey });
    expect(first.json.data.map((d: { amount: number }) => d.amount)).toEqual([5, 4]);
    expect(first.json.has_more).toBe(true);
    const second = await app.call("GET", `/v1/billing/transactions?limit=2&cursor=${first.json.next_cursor}`, {
      key: org.orgKey,
    });
    expect(second.json.data.map((d: { amount: number }) => d.amount)).toEqual([3, 2]);
    const third = await app.call("GET", `/v1/billing/transactions?limit=2&cursor=${second.json.next_cursor}`, {
      key: org.orgKey,
    });
    expect(third.json.data.map((d: { amount: number }) => d.amount)).toEqual([1]);
    expect(third.json).toMatchObject({ has_more: false, next_cursor: null });
    const bad = await app.call("GET", "/v1/billing/transactions?cursor=garbage", { key: org.orgKey });
    expect(bad.status).toBe(400);
    expect(bad.json.error.param).toBe("cursor");
  });
});
