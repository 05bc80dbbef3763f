import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApp, manualClock, type TestApp } from "../../../support/app.js";
import { createTestDatabase, type TestDatabase } from "../../../support/database.js";

describe("GET /v1/billing/transactions (listTransactions)", () => {
  let db: TestDatabase;
  let t: TestApp;
  const clock = manualClock();
  beforeAll(async () => {
    db = await createTestDatabase();
    t = createTestApp({ sql: db.appSql, clock });
  });
  afterAll(() => db.drop());

  it("pages the ledger history newest first with a cursor", async () => {
    const org = await t.createOrg();
    for (let i = 1; i <= 5; i++) await t.grant(org.id, `${i}`, `page-${i}`);
    const first = await t.call("GET", "/v1/billing/transactions?limit=2", { key: org.orgKey });
    expect(first.json.data.map((d: { amount: number }) => d.amount)).toEqual([5, 4]);
    expect(first.json.has_more).toBe(true);
    const second = await t.call("GET", `/v1/billing/transactions?limit=2&cursor=${first.json.next_cursor}`, {
      key: org.orgKey,
    });
    expect(second.json.data.map((d: { amount: number }) => d.amount)).toEqual([3, 2]);
    const third = await t.call("GET", `/v1/billing/transactions?limit=2&cursor=${second.json.next_cursor}`, {
      key: org.orgKey,
    });
    expect(third.json.data.map((d: { amount: number }) => d.amount)).toEqual([1]);
    expect(third.json).toMatchObject({ has_more: false, next_cursor: null });
    const bad = await t.call("GET", "/v1/billing/transactions?cursor=garbage", { key: org.orgKey });
    expect(bad.status).toBe(400);
    expect(bad.json.error.param).toBe("cursor");
  });
});
