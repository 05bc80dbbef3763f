/**
 * Metering grants a new cycle's included credits at the org's first request of it, when the
 * previous cycle is not closed yet (grantOpenCycleCredits). It decided the plan from the
 * subscription read without the org's lock: a cancel or change of plan dated just before the
 * boundary (by a process a little behind, or one that read its clock at the month's last instant
 * and waited for the lock) committed in between, and December got the old plan's credits while it
 * was charged the new state (found by helper-75). The plan is now decided again under the lock.
 */
import { describe, expect } from "vitest";
import { createTestApp, manualClock, type TestApp } from "../support/app.js";
import type { TestDatabase } from "../support/database.js";
import { appTest as it } from "../support/fixtures.js";
import { cancel, closeCycles, subscribeTo } from "../support/plan-calls.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import { holdLocks } from "../support/lock-waits.js";

const USD = 1_000_000_000n;
const clock = manualClock();
const usage = (app: TestApp, org: { id: string; gatewayKey: string }, key: string, at: Date) =>
  app.call("POST", "/v1/billing/usage", {
    key: org.gatewayKey,
    body: {
      events: [
        {
          idempotency_key: key,
          org_id: org.id,
          timestamp: at.toISOString(),
          product: "api",
          quantities: { requests: 1 },
        },
      ],
    },
  });

async function waitForLockWaiters(db: TestDatabase, n: number) {
  for (let i = 0; i < 500; i++) {
    const [r] = await db.sql<{ n: number }[]>`
      select count(*)::int as n from pg_stat_activity where wait_event_type = 'Lock' and datname = current_database()`;
    if ((r?.n ?? 0) >= n) return;
    await new Promise((res) => setTimeout(res, 10));
  }
  throw new Error(`never saw ${n} backends waiting on a lock`);
}

/** December 2026: its plan charge and its plan credits. */
async function december(db: TestDatabase, orgId: string) {
  const [r] = await db.sql<{ charged: bigint | null; credits: bigint | null }[]>`
    select (select sum(l.amount) from invoice_lines l join invoices i on i.id = l.invoice_id
            where i.org_id = ${orgId} and l.kind = 'subscription' and i.period_start >= '2026-12-01T00:00:00Z'
              and i.period_end <= '2027-01-01T00:00:00Z')::bigint as charged,
           (select sum(amount) from credit_grants where org_id = ${orgId} and source = 'plan'
              and expires_at = '2027-01-01T00:00:00Z')::bigint as credits`;
  return { charged: r?.charged ?? 0n, credits: r?.credits ?? 0n };
}

describe("metering's grant of December's credits racing a subscription change dated 30 Nov", () => {
  it.scoped({ appOptions: { clock } });

  it.for([
    { from: "team", change: "cancel", expected: [{ charged: 0n, credits: 0n }] },
    { from: "team", change: "free", expected: [{ charged: 0n, credits: 5n * USD }] },
    { from: "team", change: "pro", expected: [{ charged: 20n * USD, credits: 20n * USD }] },
    { from: "pro", change: "team", expected: [{ charged: 200n * USD, credits: 250n * USD }] },
  ])(
    "a process 60 ms behind changes $from to $change: December's charge and credits go together",
    async (s, { app, db }) => {
      clock.set(new Date("2026-11-05T00:00:00Z"));
      const org = await app.createOrg(`race ${s.from} ${s.change}`);
      expect((await subscribeTo(app, org.id, s.from)).status).toBe(200);
      await app.metering.ready();
      // The other API process, 60 ms behind.
      const behind = createTestApp({ sql: db.appSql, clock: () => new Date(clock().getTime() - 60) });
      clock.set(new Date("2026-12-01T00:00:00.050Z")); // behind reads 30 Nov 23:59:59.990

      // Hold the org's credits account so the two requests queue on it in a known order.
      const holder = await holdLocks(
        db.sql,
        (tx) => tx`select 1 from ledger_accounts where id = ${`org:${org.id}:credits`} for update`,
      );
      const change = s.change === "cancel" ? cancel(behind, org.id) : subscribeTo(behind, org.id, s.change);
      await waitForLockWaiters(db, 1); // the change waits for the org's lock
      const used = usage(app, org, "u-dec-1", clock()); // metering reads the subscription, then waits to grant
      await waitForLockWaiters(db, 2);
      await holder.release();
      const [changed, metered] = await Promise.all([change, used]);
      expect(changed.status, changed.text).toBe(200);
      expect(metered.status, metered.text).toBe(200);

      clock.set(new Date("2027-01-01T00:00:05Z"));
      expect((await closeCycles(app, org.id)).status).toBe(200);
      // The change was dated 30 Nov 23:59:59.990 (nothing was decided for December when it took the
      // lock), so December is charged the new state; its credits must be the new state's too.
      expect([await december(db, org.id)]).toEqual(s.expected);
      await expectLedgerConsistent(db.sql);
    },
  );

  it("one process, no skew: a cancel that read its clock at 30 Nov 23:59:59.999 and waits for the org's lock, a usage request at 1 Dec 00:00:00.001: December is charged and credited alike", async ({
    app,
    db,
  }) => {
    clock.set(new Date("2026-11-05T00:00:00Z"));
    const org = await app.createOrg("race one process");
    expect((await subscribeTo(app, org.id, "team")).status).toBe(200);
    await app.metering.ready();
    clock.set(new Date("2026-11-30T23:59:59.999Z"));
    const holder = await holdLocks(
      db.sql,
      (tx) => tx`select 1 from ledger_accounts where id = ${`org:${org.id}:credits`} for update`,
    );
    const change = cancel(app, org.id); // reads the clock (23:59:59.999), then waits for the lock
    await waitForLockWaiters(db, 1);
    clock.set(new Date("2026-12-01T00:00:00.001Z"));
    const used = usage(app, org, "u-dec-1", clock()); // December's first request: metering reads the subscription, then waits
    await waitForLockWaiters(db, 2);
    await holder.release();
    const [changed, metered] = await Promise.all([change, used]);
    expect(changed.json.canceled_at, changed.text).toBe("2026-11-30T23:59:59.999Z");
    expect(metered.status, metered.text).toBe(200);
    clock.set(new Date("2027-01-01T00:00:05Z"));
    expect((await closeCycles(app, org.id)).status).toBe(200);
    expect(await december(db, org.id)).toEqual({ charged: 0n, credits: 0n });
    await expectLedgerConsistent(db.sql);
  });
});
