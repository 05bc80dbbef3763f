import type { AddressInfo } from "node:net";
import { serve } from "@hono/node-server";
import { describe, expect } from "vitest";
import {
  type AuthorizeRequest,
  GatewayClient,
  type GatewayClientOptions,
  GatewayConnectionError,
  GatewayError,
} from "../../client/index.js";
import { startCuttingProxy, type CuttingProxy } from "../support/cutting-proxy.js";
import { appTest } from "../support/fixtures.js";
import { expectLedgerConsistent } from "../support/ledger.js";

// The gateway's client (client/gateway.ts) against the real app served over HTTP on the file's
// database, through a TCP proxy that can cut connections. The server counts the HTTP requests
// each path receives, which is what the batching is for.

// zen-pro: input $0.0000025/token, output $0.00001/token → 1000 in + 500 out = $0.0075
const ESTIMATE = { input_tokens: 1000, output_tokens: 500 };
const COST_NANO = 7_500_000n;

type Api = { requests: Map<string, number>; proxy: CuttingProxy };

const it = appTest.extend<{ api: Api }>({
  api: [
    async ({ app }, use) => {
      const requests = new Map<string, number>();
      const server = serve({
        fetch: (req: Request) => {
          const path = new URL(req.url).pathname;
          requests.set(path, (requests.get(path) ?? 0) + 1);
          return app.app.fetch(req);
        },
        hostname: "127.0.0.1",
        port: 0,
      });
      await new Promise<void>((resolve) => server.once("listening", () => resolve()));
      const proxy = await startCuttingProxy({ host: "127.0.0.1", port: (server.address() as AddressInfo).port });
      try {
        await use({ requests, proxy });
      } finally {
        await proxy.close();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    },
    { scope: "file" },
  ],
});

describe("GatewayClient", () => {
  it.scoped({ dbOptions: { max: 10 } });

  /** A client through the proxy; closed by the test that made it. */
  const clientOf = (api: Api, key: string, opts: Partial<GatewayClientOptions> = {}) =>
    new GatewayClient({ baseUrl: api.proxy.url, key, ...opts });
  const request = (orgId: string, extra: Partial<AuthorizeRequest> = {}): AuthorizeRequest => ({
    org_id: orgId,
    product: "llm",
    model: "zen-pro",
    estimate: ESTIMATE,
    ...extra,
  });
  const usage = (orgId: string, key: string) => ({
    idempotency_key: key,
    org_id: orgId,
    product: "llm",
    model: "zen-pro",
    quantities: { input_tokens: 900, output_tokens: 450 },
  });
  const counted = (api: Api, path: string) => api.requests.get(path) ?? 0;

  it("sends concurrent calls as one HTTP request per kind, over one kept-alive connection", async ({ app, api }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "10.00");
    const client = clientOf(api, org.gatewayKey);
    const before = { authorize: counted(api, "/v1/billing/authorize/batch"), usage: counted(api, "/v1/billing/usage") };
    const connectionsBefore = api.proxy.stats().connections;
    try {
      const holds = await Promise.all(Array.from({ length: 50 }, () => client.authorize(request(org.id))));
      expect(new Set(holds.map((h) => h.hold_id)).size).toBe(50);
      expect(counted(api, "/v1/billing/authorize/batch") - before.authorize).toBe(1);
      const settled = await Promise.all(holds.map((h, i) => client.settle(h.hold_id, usage(org.id, `batching-${i}`))));
      expect(settled.map((s) => [s.status, s.hold_id, s.hold_outcome])).toEqual(
        holds.map((h) => ["recorded", h.hold_id, "released"]),
      );
      expect(counted(api, "/v1/billing/usage") - before.usage).toBe(1);
      expect(api.proxy.stats().connections - connectionsBefore).toBe(1); // both requests on one kept-alive connection
      // A full batch goes out at once, without waiting for the timer (a minute here); close()
      // sends what is left: 45 calls with maxBatch 20 are three requests.
      const small = clientOf(api, org.gatewayKey, { maxBatch: 20, maxDelayMs: 60_000 });
      await Promise.all(Array.from({ length: 40 }, () => small.authorize(request(org.id))));
      expect(small.requestsSent).toBe(2);
      const rest = Promise.all(Array.from({ length: 5 }, () => small.authorize(request(org.id))));
      await small.close();
      expect(await rest).toHaveLength(5);
      expect(small.requestsSent).toBe(3);
    } finally {
      await client.close();
    }
  });

  it("waits for no timer by default: calls of later turns go in a request of their own, unless maxDelayMs gathers them", async ({
    app,
    api,
  }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "10.00");
    const nextTurn = () => new Promise<void>((resolve) => setImmediate(resolve));
    const inTwoTurns = async (client: GatewayClient) => {
      const first = client.authorize(request(org.id));
      await nextTurn();
      const second = client.authorize(request(org.id));
      await Promise.all([first, second]);
      return client.requestsSent;
    };
    const eager = clientOf(api, org.gatewayKey);
    const patient = clientOf(api, org.gatewayKey, { maxDelayMs: 200 });
    try {
      expect(await inTwoTurns(eager)).toBe(2);
      expect(await inTwoTurns(patient)).toBe(1);
    } finally {
      await Promise.all([eager.close(), patient.close()]);
    }
  });

  it("answers every call with its own result, whatever its neighbours in the batch", async ({ app, api }) => {
    const orgs = await Promise.all([app.createOrg("A"), app.createOrg("B"), app.createOrg("C")]);
    for (const o of orgs) await app.grant(o.id, "10.00");
    const client = clientOf(api, orgs[0]!.gatewayKey);
    try {
      // Call i: organization i % 3, an estimate of (i + 1) × 1000 input tokens = (i + 1) × $0.0025.
      const calls = Array.from({ length: 30 }, (_, i) => ({
        orgId: orgs[i % 3]!.id,
        amount: BigInt(i + 1) * 2_500_000n,
        promise: client.authorize(request(orgs[i % 3]!.id, { estimate: { input_tokens: (i + 1) * 1000 } })),
      }));
      for (const call of calls) {
        const hold = await call.promise;
        expect(hold.org_id).toBe(call.orgId);
        expect(hold.amount_nano_usd).toBe(call.amount.toString());
      }
    } finally {
      await client.close();
    }
  });

  it("rejects only the refused calls of a batch, each with its typed error", async ({ app, api, db }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "0.01"); // one hold of $0.0075 fits, a second does not
    const client = clientOf(api, org.gatewayKey);
    try {
      const outcomes = await Promise.allSettled([
        client.authorize(request(org.id)),
        client.authorize(request(org.id, { estimate: { input_tokens: -5 } })),
        client.authorize(request("org_missing")),
        client.authorize(request(org.id)),
        client.authorize(request(org.id, { model: "zen-9000" })),
      ]);
      expect(outcomes[0]).toMatchObject({ status: "fulfilled", value: { org_id: org.id, status: "active" } });
      const reasons = outcomes.slice(1).map((o) => (o.status === "rejected" ? o.reason : o.value));
      for (const r of reasons) expect(r).toBeInstanceOf(GatewayError);
      expect(reasons.map((r: GatewayError) => [r.code, r.status, r.param])).toEqual([
        ["invalid_request", 400, "estimate.input_tokens"],
        ["unknown_organization", 422, "org_id"],
        ["insufficient_balance", 402, undefined],
        ["unknown_model", 422, "model"],
      ]);
      expect(reasons[2]).toMatchObject({ type: "billing_error", retryable: false, requestId: expect.any(String) });

      const hold = outcomes[0].status === "fulfilled" ? outcomes[0].value : undefined;
      const [good, bad] = await Promise.allSettled([
        client.settle(hold!.hold_id, usage(org.id, "refused-1")),
        client.reportUsage({ ...usage(org.id, "refused-2"), timestamp: "not a time" }),
      ]);
      expect(good).toMatchObject({ status: "fulfilled", value: { status: "recorded", hold_outcome: "released" } });
      expect(bad.status === "rejected" && bad.reason).toMatchObject({ code: "invalid_request", param: "timestamp" });
      await expectLedgerConsistent(db.sql);
    } finally {
      await client.close();
    }
  });

  it("refuses what it cannot send, before sending it", async ({ app, api }) => {
    const org = await app.createOrg();
    const client = clientOf(api, org.gatewayKey);
    const sent = client.requestsSent;
    try {
      const circular: Record<string, unknown> = request(org.id);
      circular.self = circular;
      for (const bad of [null, "org_x", [request(org.id)], circular]) {
        const err = await client.authorize(bad as AuthorizeRequest).catch((e: unknown) => e);
        expect(err).toBeInstanceOf(GatewayError);
        expect(err).toMatchObject({ code: "invalid_request", status: 400 });
      }
      await expect(client.settle("hold_x", null as never)).rejects.toMatchObject({ code: "invalid_request" });
      expect(client.requestsSent).toBe(sent);
      expect(() => clientOf(api, org.gatewayKey, { maxBatch: 1001 })).toThrow(RangeError);
      expect(() => clientOf(api, org.gatewayKey, { maxBatch: 0 })).toThrow(RangeError);
      // A refused key fails every call of its batch with the API's error.
      const stranger = clientOf(api, "hk-not-a-key-0123456789abcdef");
      const refused = await Promise.allSettled([
        stranger.authorize(request(org.id)),
        stranger.authorize(request(org.id)),
      ]);
      for (const r of refused) expect(r.status === "rejected" && r.reason).toMatchObject({ status: 401 });
      await stranger.close();
    } finally {
      await client.close();
    }
  });

  it("sends a batch again after its connection was cut: keyed calls get their first outcome, nothing twice", async ({
    app,
    api,
    db,
  }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "10.00");
    const client = clientOf(api, org.gatewayKey);
    try {
      api.proxy.cutNextResponses(1);
      const cutBefore = api.proxy.stats().cut;
      const outcomes = await Promise.allSettled([
        client.authorize(request(org.id, { idempotency_key: "cut-a1" })),
        client.authorize(request(org.id, { idempotency_key: "cut-a2" })),
        client.authorize(request(org.id)), // no key: not retried
      ]);
      expect(api.proxy.stats().cut - cutBefore).toBe(1);
      const [a1, a2, unkeyed] = outcomes;
      // The first attempt held them; the retry is answered with those holds.
      expect(a1).toMatchObject({ status: "fulfilled", value: { replayed: true, status: "active" } });
      expect(a2).toMatchObject({ status: "fulfilled", value: { replayed: true, status: "active" } });
      expect(unkeyed.status === "rejected" && unkeyed.reason).toBeInstanceOf(GatewayConnectionError);
      expect(unkeyed.status === "rejected" && unkeyed.reason).toMatchObject({ keyed: false });
      const holds = await db.sql<{ idempotency_key: string | null }[]>`
        select idempotency_key from holds where org_id = ${org.id} order by idempotency_key`;
      // The unkeyed call was applied before its answer was lost: the client could not know, and said so.
      expect(holds.map((h) => h.idempotency_key)).toEqual(["cut-a1", "cut-a2", null]);

      const holdIds = [a1, a2].map((o) => (o.status === "fulfilled" ? o.value.hold_id : ""));
      api.proxy.cutNextResponses(1);
      const settled = await Promise.all(holdIds.map((id, i) => client.settle(id, usage(org.id, `cut-u${i}`))));
      expect(settled.map((s) => [s.status, s.hold_id])).toEqual(holdIds.map((id) => ["duplicate", id]));
      const events = await db.sql<
        { n: number }[]
      >`select count(*)::int as n from usage_events where org_id = ${org.id}`;
      expect(events[0]?.n).toBe(2);
      const balance = (await app.call("GET", "/v1/billing/balance", { key: org.orgKey })).json;
      // Charged once per event (900 in + 450 out = $0.00675), the unkeyed hold still held.
      expect(balance.held_nano_usd).toBe(COST_NANO.toString());
      expect(BigInt(balance.balance_nano_usd)).toBe(10_000_000_000n - 2n * 6_750_000n);
      await expectLedgerConsistent(db.sql);

      // A connection that never answers: keyed calls fail once the retries are spent, safe to call again.
      const patient = clientOf(api, org.gatewayKey, { retries: 1 });
      api.proxy.cutNextResponses(2);
      const lost = await patient.authorize(request(org.id, { idempotency_key: "cut-lost" })).catch((e: unknown) => e);
      expect(lost).toBeInstanceOf(GatewayConnectionError);
      expect(lost).toMatchObject({ keyed: true });
      expect(patient.requestsSent).toBe(2);
      const again = await patient.authorize(request(org.id, { idempotency_key: "cut-lost" }));
      expect(again.replayed).toBe(true);
      await patient.close();
    } finally {
      api.proxy.cutNextResponses(0);
      await client.close();
    }
  });

  it("gives exactly as many holds as the balance covers to many concurrent calls", async ({ app, api, db }) => {
    const K = 37;
    const org = await app.createOrg();
    await app.grant(org.id, (Number(BigInt(K) * COST_NANO) / 1e9).toFixed(9));
    // Small batches over several connections, so that batches race each other in the API.
    const client = clientOf(api, org.gatewayKey, { maxBatch: 8, maxConnections: 4 });
    try {
      const outcomes = await Promise.allSettled(
        Array.from({ length: 3 * K }, (_, i) => client.authorize(request(org.id, { idempotency_key: `race-${i}` }))),
      );
      const held = outcomes.filter((o) => o.status === "fulfilled");
      const refused = outcomes.filter((o) => o.status === "rejected").map((o) => o.reason);
      expect(held).toHaveLength(K);
      expect(refused).toHaveLength(2 * K);
      for (const r of refused) expect(r).toMatchObject({ code: "insufficient_balance", status: 402 });
      expect(client.requestsSent).toBeGreaterThan(1);
      const holds = await db.sql<{ n: number }[]>`
        select count(*)::int as n from holds where org_id = ${org.id} and status = 'active'`;
      expect(holds[0]?.n).toBe(K);
      await expectLedgerConsistent(db.sql);
    } finally {
      await client.close();
    }
  });
});
