import { randomBytes } from "node:crypto";
import postgres from "postgres";
import Stripe from "stripe";
import { KeyCache } from "../../src/billing/api-keys.js";
import { expireGrants } from "../../src/billing/grants.js";
import { expireHolds } from "../../src/billing/holds.js";
import type { Metering } from "../../src/billing/metering.js";
import type { Sql } from "../../src/db/client.js";
import { createTestApp, type JsonReply, manualClock, TEST_ADMIN_KEY } from "../support/app.js";
import type { TestDatabase } from "../support/database.js";
import { processorEvent, processorId, TEST_WEBHOOK_SECRET } from "../support/processor.js";
import { contextAt } from "../support/context.js";

export type Reply = { status: number; json: JsonReply; text: string };
/** `replica` picks the API process when there are several (requests meant to share a batch go to one). */
export type Call = (
  method: string,
  path: string,
  init?: { key?: string; body?: unknown; rawBody?: string; headers?: Record<string, string>; replica?: number },
) => Promise<Reply>;
export type OrgHandle = { id: string; orgKey: string; gatewayKey: string; customerId: string };

/**
 * The real service as the model tests drive it: HTTP for everything a client does, the worker
 * verbs for the sweeps. In process (one app, a manual clock) or over the network to API
 * processes (the real clock); `call` picks the replica.
 */
export class System {
  constructor(
    readonly sql: Sql,
    readonly call: Call,
    readonly now: () => Date,
    private readonly moveClock: (ms: number) => Promise<void>,
    /** The in-process app's metering, for requests that must share one group commit. */
    readonly metering: Metering | null,
  ) {}

  advance(ms: number): Promise<void> {
    return this.moveClock(ms);
  }

  async createOrg(name: string): Promise<OrgHandle> {
    const admin = { key: TEST_ADMIN_KEY };
    const org = await this.ok(this.call("POST", "/v1/admin/orgs", { ...admin, body: { name } }));
    const orgKey = await this.ok(
      this.call("POST", `/v1/admin/orgs/${org.json.id}/keys`, { ...admin, body: { scope: "org" } }),
    );
    const gatewayKey = await this.ok(
      this.call("POST", "/v1/admin/keys", { ...admin, body: { scope: "gateway", name: `gateway for ${name}` } }),
    );
    const customerId = processorId("cus");
    await this.ok(
      this.call("PUT", `/v1/admin/orgs/${org.json.id}/processor-customer`, {
        ...admin,
        body: { customer_id: customerId },
      }),
    );
    return { id: org.json.id, orgKey: orgKey.json.key, gatewayKey: gatewayKey.json.key, customerId };
  }

  /** A processor event, signed with the processor SDK's test helper at the service's time. */
  deliver(type: string, object: Record<string, unknown>): Promise<Reply> {
    const created = Math.floor(this.now().getTime() / 1000);
    const payload = JSON.stringify(processorEvent(type, object, { created }));
    const header = Stripe.webhooks.generateTestHeaderString({
      payload,
      secret: TEST_WEBHOOK_SECRET,
      timestamp: created,
    });
    return this.call("POST", "/v1/webhooks/processor", {
      rawBody: payload,
      headers: { "content-type": "application/json", "stripe-signature": header },
    });
  }

  sweepHolds(): Promise<number> {
    return expireHolds(contextAt(this.sql, this.now()));
  }

  expireGrants(): Promise<number> {
    return expireGrants(contextAt(this.sql, this.now()));
  }

  /** Closes what earlier runs left open (their holds and grants are all past due by now), so each run's sweeps see only its own orgs. */
  async drainSweeps(): Promise<void> {
    while ((await this.sweepHolds()) > 0);
    for (let i = 0; i < 100 && (await this.expireGrants()) > 0; i++);
  }

  private async ok(reply: Promise<Reply>): Promise<Reply> {
    const r = await reply;
    if (r.status !== 200 && r.status !== 201) throw new Error(`setup call failed: ${r.status} ${r.text}`);
    return r;
  }
}

/**
 * The in-process system: the real app (with the API's key cache) on a manual clock. Every run
 * starts ten minutes after the previous one (a run lasts a few minutes of model time, so all
 * that earlier runs left is past due) and never near a month's end (no billing cycle ends by
 * itself during a run). Model time stays behind the wall clock even after thousands of runs, so
 * the catalog is priced from memory as in production (Catalog.covers).
 */
export function inProcessSystem(sql: Sql) {
  const clock = manualClock(new Date("2026-01-02T00:00:00Z"));
  const t = createTestApp({
    sql,
    clock,
    config: { STRIPE_WEBHOOK_SECRET: TEST_WEBHOOK_SECRET },
    extra: { keyCache: new KeyCache() },
  });
  const system = new System(sql, t.call as Call, clock, async (ms) => clock.advance(ms), t.metering);
  function nextRunStart(): Date {
    const next = new Date(clock().getTime() + 600_000);
    next.setUTCMilliseconds(0);
    next.setUTCSeconds(0);
    if (next.getUTCDate() >= 27) return new Date(Date.UTC(next.getUTCFullYear(), next.getUTCMonth() + 1, 2));
    return next;
  }
  return {
    system,
    /** A fresh start for one run: time moved on, leftovers swept, two new organizations. */
    async newRun(orgCount = 2): Promise<{ orgs: OrgHandle[]; tag: string }> {
      clock.set(nextRunStart());
      await system.drainSweeps();
      const tag = randomBytes(4).toString("hex");
      const orgs = await Promise.all(Array.from({ length: orgCount }, (_, i) => system.createOrg(`model ${tag} ${i}`)));
      return { orgs, tag };
    },
  };
}

/**
 * Commits of this test database return without waiting for the WAL flush: thousands of small
 * commits per run, and durability across a crash is not what these tests are about (every
 * commit is still atomic and visible at once). Call before the database's pool first connects.
 */
export async function skipFlushWaits(db: TestDatabase): Promise<void> {
  const admin = postgres(db.url, { max: 1, onnotice: () => {} });
  try {
    await admin.unsafe(`alter database "${db.name}" set synchronous_commit = off`);
  } finally {
    await admin.end();
  }
}
