import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApp, manualClock, type TestApp } from "../../../support/app.js";
import { createTestDatabase, type TestDatabase } from "../../../support/database.js";

describe("GET /v1/billing/balance (getBalance)", () => {
  let db: TestDatabase;
  let t: TestApp;
  const clock = manualClock();
  beforeAll(async () => {
    db = await createTestDatabase();
    t = createTestApp({ sql: db.appSql, clock });
  });
  afterAll(() => db.drop());

  it("returns exactly the seed's shape plus exact fields", async () => {
    const org = await t.createOrg();
    await t.grant(org.id, "142.87");
    const res = await t.call("GET", "/v1/billing/balance", { key: org.orgKey });
    expect(res.status).toBe(200);
    expect(res.text.startsWith('{"currency":"USD","balance":142.87,"credits":142.87,"low_balance_threshold":10,')).toBe(
      true,
    );
    expect(res.json).toEqual({
      currency: "USD",
      balance: 142.87,
      credits: 142.87,
      low_balance_threshold: 10,
      balance_nano_usd: "142870000000",
      credits_nano_usd: "142870000000",
      held_nano_usd: "0",
      low_balance_threshold_nano_usd: "10000000000",
    });
  });
});
