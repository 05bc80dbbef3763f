import { describe, expect } from "vitest";
import type { KeyPermission } from "../../src/billing/api-keys.js";
import { setBudget } from "../../src/billing/budgets.js";
import { createTestApp, manualClock, type TestApp } from "../support/app.js";
import { testContext } from "../support/context.js";
import { dbTest as it } from "../support/fixtures.js";

/**
 * A budget PUT that read the clock just before a month boundary and got the organization's lock
 * after it (it waited for a connection, or for the lock, while another replica recorded the new
 * month's first usage). setBudget took its period from the clock read before the lock: a new
 * budget's counter started at the old month, so the new month's usage so far was in no counter
 * and a hard limit let that much more through; a changed limit re-armed the old month's alerts, not
 * the new one's (helper-90). The period now comes from the clock read under the lock.
 */
const USD = 1_000_000_000n;

/** Time passing while the PUT waits: its first reading of the clock is before midnight, the rest after. */
function waitedPastMidnight() {
  let reads = 0;
  return () => new Date(reads++ === 0 ? "2026-11-30T23:59:59.000Z" : "2026-12-01T00:00:02.000Z");
}

async function story(app: TestApp, clock: ReturnType<typeof manualClock>) {
  clock.set(new Date("2026-11-30T23:00:00Z"));
  const org = await app.createOrg("Boundary");
  await app.grant(org.id, "100");
  let n = 0;
  const report = async (usd: number) => {
    const res = await app.call("POST", "/v1/billing/usage", {
      key: org.gatewayKey,
      body: {
        events: [
          {
            idempotency_key: `use-${++n}`,
            org_id: org.id,
            timestamp: clock().toISOString(),
            product: "api",
            quantities: { requests: usd * 10_000 }, // $0.0001 a request
          },
        ],
      },
    });
    expect(res.json.recorded, res.text).toBe(1);
  };
  const principal = {
    keyId: org.orgKeyId,
    orgId: org.id,
    scope: "org" as const,
    permissions: ["keys:write"] as KeyPermission[],
  };
  return { org, report, principal };
}

describe("a budget set across a month boundary", () => {
  it("a new hard budget counts the new month's usage recorded before it got the lock", async ({ db }) => {
    const clock = manualClock(new Date("2026-11-30T23:00:00Z"));
    const app = createTestApp({ sql: db.appSql, clock });
    const { org, report, principal } = await story(app, clock);
    await report(1); // November
    clock.set(new Date("2026-12-01T00:00:01Z"));
    await report(5); // December, before the PUT's lock
    const { budget } = await setBudget(testContext(db.appSql, { clock: waitedPastMidnight() }), {
      principal,
      target: { scope: "org" },
      limit: 6n * USD,
      enforcement: "hard",
    });
    expect({ start: budget.period.start.toISOString(), spent: budget.spent }).toEqual({
      start: "2026-12-01T00:00:00.000Z",
      spent: 5n * USD,
    });
    // $2 more would take December to $7 under a $6 hard limit.
    const auth = await app.call("POST", "/v1/billing/authorize", {
      key: org.gatewayKey,
      body: { org_id: org.id, product: "api", estimate: { requests: 20_000 } },
    });
    expect(auth.status, auth.text).toBe(402);
  });

  it("a limit changed across midnight re-arms the new month's thresholds", async ({ db }) => {
    const clock = manualClock(new Date("2026-11-30T23:00:00Z"));
    const app = createTestApp({ sql: db.appSql, clock });
    const { org, report, principal } = await story(app, clock);
    const made = await app.call("PUT", "/v1/billing/budgets", {
      key: org.orgKey,
      body: { scope: "org", limit: "10.00", enforcement: "soft" },
    });
    expect(made.status, made.text).toBe(201);
    clock.set(new Date("2026-12-01T00:00:01Z"));
    await report(8.5); // 85 % of December's $10: told
    await setBudget(testContext(db.appSql, { clock: waitedPastMidnight() }), {
      principal,
      target: { scope: "org" },
      limit: 20n * USD,
      enforcement: "soft",
    });
    clock.set(new Date("2026-12-02T00:00:00Z"));
    await report(7.5); // $16: 80 % of the new $20
    const events = await db.sql<{ data: { threshold: number; limit_usd: string; period: string } }[]>`
      select data from billing_events where org_id = ${org.id} and type = 'budget.threshold_reached' order by seq`;
    expect(events.map((e) => `${e.data.period} ${e.data.threshold} % of ${e.data.limit_usd}`)).toEqual([
      "2026-12 80 % of 10",
      "2026-12 80 % of 20",
    ]);
  });
});
