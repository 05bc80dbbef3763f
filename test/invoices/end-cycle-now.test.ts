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

  it("with an Idempotency-Key, a retry of the request however late ends nothing more and charges once", async () => {
    // A retry after a lost answer: without the key, one later than 60 s ended the next cycle
    // too, invoicing its plan again.
    clock.set(new Date("2026-11-12T09:00:00Z"));
    const org = await t.createOrg("Retried Co");
    await t.grant(org.id, "100");
    const subscribed = await t.call("PUT", `/v1/admin/orgs/${org.id}/subscription`, {
      key: TEST_ADMIN_KEY,
      body: { plan_id: "pro" },
    });
    expect(subscribed.status).toBe(200);
    const endNowKeyed = (key: string) =>
      t.call("POST", "/v1/admin/cycles/close", {
        key: TEST_ADMIN_KEY,
        headers: { "idempotency-key": key },
        body: { org_id: org.id, end_current_cycle_now: true },
      });
    const settlements = async () => {
      const [row] = await db.sql<{ n: number }[]>`
        select count(*)::int as n from ledger_transactions t
        where t.kind = 'invoice_settlement' and exists (
          select 1 from ledger_entries e where e.transaction_id = t.id and e.created_at = t.created_at
            and e.account_id = ${`org:${org.id}:credits`})`;
      return row?.n ?? 0;
    };

    clock.set(new Date("2026-11-15T09:00:00Z"));
    const first = await endNowKeyed("end-1");
    expect(first.json).toEqual({ invoices_created: 1, already_closed: 0, organizations: 1 });
    expect(await settlements()).toBe(1);

    for (const at of ["2026-11-15T09:00:20Z", "2026-11-15T09:05:00Z", "2026-11-20T09:00:00Z"]) {
      clock.set(new Date(at));
      const retry = await endNowKeyed("end-1");
      expect(retry.status, at).toBe(200);
      expect(retry.headers.get("idempotent-replayed"), at).toBe("true");
      expect(retry.json, at).toEqual({ invoices_created: 0, already_closed: 0, organizations: 0 });
    }
    const invoices = await db.sql<{ request_key: string | null }[]>`
      select request_key from invoices where org_id = ${org.id} order by period_start`;
    expect(invoices.map((i) => i.request_key)).toEqual(["end-1"]);
    expect(await settlements()).toBe(1);

    // Another key is another request: it ends the cycle that began at the first one's end.
    const next = await endNowKeyed("end-2");
    expect(next.json).toEqual({ invoices_created: 1, already_closed: 0, organizations: 1 });
    expect(await settlements()).toBe(2);
  });
});
