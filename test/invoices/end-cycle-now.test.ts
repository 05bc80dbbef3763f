import { afterAll, beforeAll, describe, expect, it } from "vitest";
import { createTestApp, manualClock, TEST_ADMIN_KEY, type TestApp } from "../support/app.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";

describe("POST /v1/admin/cycles/close with end_current_cycle_now", () => {
  let db: TestDatabase;
  let t: TestApp;
  const clock = manualClock(new Date("2026-11-01T00:00:00Z"));
  beforeAll(async () => {
    db = await createTestDatabase();
    t = createTestApp({ sql: db.sql, clock });
  });
  afterAll(() => db.drop());

  const endNow = (orgId: string) =>
    t.call("POST", "/v1/admin/cycles/close", {
      key: TEST_ADMIN_KEY,
      body: { org_id: orgId, end_current_cycle_now: true },
    });

  it("within 60 s of the previous close ends nothing and says why; after that it ends the cycle", async () => {
    const org = await t.createOrg("Twice Co");
    clock.set(new Date("2026-11-10T12:00:00Z"));
    const first = await endNow(org.id);
    expect(first.json).toEqual({ invoices_created: 1, already_closed: 0, organizations: 1 });

    clock.set(new Date("2026-11-10T12:00:30Z"));
    const again = await endNow(org.id);
    expect(again.status).toBe(200);
    expect(again.json).toMatchObject({
      invoices_created: 0,
      already_closed: 0,
      organizations: 0,
      reason: "cycle_started_recently",
    });
    expect(again.json.message).toContain("2026-11-10T12:01:00.000Z");

    clock.set(new Date("2026-11-10T12:01:00Z"));
    const later = await endNow(org.id);
    expect(later.json).toEqual({ invoices_created: 1, already_closed: 0, organizations: 1 });
  });
});
