import { describe, expect } from "vitest";
import { createSql } from "../../src/db/client.js";
import { createTestApp } from "../support/app.js";
import { dbTest } from "../support/fixtures.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import { startAnswerCutter } from "../support/pg-answer-cutter.js";

// The API's link to PostgreSQL fails after a metering batch committed: the batch's answer is
// lost. The group commit then writes each of its requests again on its own, and a request
// without an idempotency key must find the hold its first attempt committed, not get a second.

const authorization = (orgId: string, key?: string) => ({
  org_id: orgId,
  product: "llm",
  model: "zen-pro",
  estimate: { input_tokens: 1000, output_tokens: 500 },
  ...(key ? { idempotency_key: key } : {}),
});

describe("a metering batch whose answer is lost after its commit", () => {
  /** The app on the file's database, reached through the cutter; lanes: 1, so concurrent requests share a batch. */
  async function appBehindCutter(appUrl: string) {
    const cutter = await startAnswerCutter(5432);
    const url = new URL(appUrl);
    url.port = String(cutter.port);
    const sql = createSql(url.toString(), { max: 4 });
    const app = createTestApp({ sql, meteringLanes: 1 });
    const org = await app.createOrg();
    await app.grant(org.id, "10.00");
    // The catalog read and the batch statement's preparation go through before the cut.
    const warm = await app.call("POST", "/v1/billing/authorize", {
      key: org.gatewayKey,
      body: authorization(org.id, "warm"),
    });
    expect(warm.status).toBe(201);
    return {
      app,
      org,
      cutter,
      async close() {
        await sql.end({ timeout: 1 });
        await cutter.close();
      },
    };
  }

  dbTest("grants each authorization of the batch one hold, keyed or not, and answers each with it", async ({ db }) => {
    const { app, org, cutter, close } = await appBehindCutter(db.appUrl);
    try {
      cutter.arm('"ttl_seconds"');
      // One organization's requests of one call: one batch.
      const answer = await app.call("POST", "/v1/billing/authorize/batch", {
        key: org.gatewayKey,
        body: { requests: [authorization(org.id), authorization(org.id), authorization(org.id, "k1")] },
      });
      expect(cutter.cuts()).toBe(1);
      const results = (answer.json as { results: { status: number; hold?: { hold_id: string } }[] }).results;
      expect(results.map((r) => r.status)).toEqual([200, 200, 200]);
      const holds = await db.sql<{ id: string; key: string | null }[]>`
        select id, idempotency_key as key from holds where org_id = ${org.id} and idempotency_key is distinct from 'warm' order by id`;
      // Two requests without a key, one with: three holds, each the one its request was answered with.
      expect(holds).toHaveLength(3);
      expect(results.map((r) => r.hold?.hold_id).sort()).toEqual(holds.map((h) => h.id));
      const [balance] = await db.sql<{ held: bigint }[]>`
        select held from ledger_accounts where id = ${`org:${org.id}:credits`}`;
      expect(balance?.held).toBe(4n * 7_500_000n); // the three and the warm-up's, $0.0075 each
      await expectLedgerConsistent(db.sql);
    } finally {
      await close();
    }
  });

  dbTest(
    "keeps one hold per request when the lost batch reaches PostgreSQL after its requests were written again",
    async ({ db }) => {
      const { app, org, cutter, close } = await appBehindCutter(db.appUrl);
      try {
        cutter.arm('"ttl_seconds"', "late");
        const answer = await app.call("POST", "/v1/billing/authorize/batch", {
          key: org.gatewayKey,
          // Without keys: only the holds' ids can tell the late attempt's holds from the new ones.
          body: { requests: [authorization(org.id), authorization(org.id)] },
        });
        expect(cutter.cuts()).toBe(1);
        // Written again one by one, each request got a hold of its own (201: none existed yet).
        const results = (answer.json as { results: { status: number; hold?: { hold_id: string } }[] }).results;
        expect(results.map((r) => r.status)).toEqual([201, 201]);
        // Now the first attempt arrives: its holds' ids are taken, so it commits nothing.
        cutter.release();
        expect(await cutter.lateAnswer).toContain("23505");
        const holds = await db.sql<{ id: string }[]>`
        select id from holds where org_id = ${org.id} and idempotency_key is distinct from 'warm' order by id`;
        expect(holds.map((h) => h.id)).toEqual(results.map((r) => r.hold?.hold_id).sort());
        await expectLedgerConsistent(db.sql);
      } finally {
        await close();
      }
    },
  );

  dbTest("answers a lone authorization without a key with the hold its lost attempt committed", async ({ db }) => {
    const { app, org, cutter, close } = await appBehindCutter(db.appUrl);
    try {
      cutter.arm('"ttl_seconds"');
      const answer = await app.call("POST", "/v1/billing/authorize", {
        key: org.gatewayKey,
        body: authorization(org.id),
      });
      expect(cutter.cuts()).toBe(1);
      expect(answer.status).toBe(200);
      const holds = await db.sql<{ id: string }[]>`
        select id from holds where org_id = ${org.id} and idempotency_key is null`;
      expect(holds.map((h) => h.id)).toEqual([(answer.json as { hold_id: string }).hold_id]);
      await expectLedgerConsistent(db.sql);
    } finally {
      await close();
    }
  });

  dbTest("charges a settle whose answer was lost once", async ({ db }) => {
    const { app, org, cutter, close } = await appBehindCutter(db.appUrl);
    try {
      const hold = await app.call("POST", "/v1/billing/authorize", {
        key: org.gatewayKey,
        body: authorization(org.id),
      });
      const holdId = (hold.json as { hold_id: string }).hold_id;
      cutter.arm('"quantities"');
      const settled = await app.call("POST", "/v1/billing/usage", {
        key: org.gatewayKey,
        body: {
          events: [
            {
              idempotency_key: "u1",
              timestamp: new Date().toISOString(),
              org_id: org.id,
              hold_id: holdId,
              product: "llm",
              model: "zen-pro",
              quantities: { input_tokens: 900, output_tokens: 450 },
            },
          ],
        },
      });
      expect(settled.status, JSON.stringify(settled.json)).toBe(200);
      const [result] = (settled.json as { results: { status: string; usage_id?: string }[] }).results;
      expect(cutter.cuts()).toBe(1);
      const events = await db.sql<
        { id: string; cost: bigint }[]
      >`select id, cost from usage_events where org_id = ${org.id}`;
      expect(events).toEqual([{ id: expect.any(String), cost: 6_750_000n }]);
      // Written again, the event finds the one its lost attempt recorded and answers with it (as
      // a replay: the key's first answer never reached anyone).
      expect(result).toMatchObject({ status: "duplicate", usage_id: events[0]?.id });
      const [credits] = await db.sql<{ balance: bigint; held: bigint }[]>`
        select balance, held from ledger_accounts where id = ${`org:${org.id}:credits`}`;
      expect(credits).toEqual({ balance: 10_000_000_000n - 6_750_000n, held: 7_500_000n }); // the warm-up's hold is still held
      await expectLedgerConsistent(db.sql);
    } finally {
      await close();
    }
  });
});
