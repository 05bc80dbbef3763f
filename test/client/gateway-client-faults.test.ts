import { describe, expect } from "vitest";
import { GatewayClient, type GatewayClientOptions, GatewayConnectionError, GatewayError } from "../../client/index.js";
import { faultProxyTest, type FaultProxy } from "../support/fault-proxy.js";
import { expectLedgerConsistent } from "../support/ledger.js";

// The gateway's client (client/gateway.ts) against the real app, through a proxy that fails the
// way a network or a load balancer does after the API answered, and with the inputs a buggy
// gateway passes. Each case is a break found by attacking the client (2026-12-04): what the
// client must do is answer every call, once, with what the API really did or with an error that
// says whether calling again is safe.

const it = faultProxyTest;

const authorization = (orgId: string, extra: Record<string, unknown> = {}) => ({
  org_id: orgId,
  product: "llm",
  model: "zen-pro",
  estimate: { input_tokens: 1000, output_tokens: 500 }, // $0.0075
  ...extra,
});
const usage = (orgId: string, key: string) => ({
  idempotency_key: key,
  org_id: orgId,
  product: "llm",
  model: "zen-pro",
  quantities: { input_tokens: 900, output_tokens: 450 }, // $0.00675
});

describe("GatewayClient under faults and hostile inputs", () => {
  it.scoped({ dbOptions: { max: 10 } });

  async function setup(
    app: { createOrg(): Promise<{ id: string; gatewayKey: string }>; grant(id: string, usd: string): Promise<unknown> },
    proxy: FaultProxy,
    opts: Partial<GatewayClientOptions> = {},
  ) {
    const org = await app.createOrg();
    await app.grant(org.id, "10.00");
    const client = new GatewayClient({ baseUrl: proxy.url, key: org.gatewayKey, ...opts });
    return { org, client };
  }

  it("decides whether a call is keyed from the JSON it sends, not from a getter the JSON leaves out", async ({
    app,
    proxy,
    db,
  }) => {
    const { org, client } = await setup(app, proxy);
    // A key on the prototype: readable, but JSON.stringify writes own properties only.
    class Request {
      org_id = org.id;
      product = "llm";
      model = "zen-pro";
      estimate = { input_tokens: 1000, output_tokens: 500 };
      get idempotency_key() {
        return "on-the-prototype";
      }
    }
    try {
      const sentBefore = proxy.bodies.length;
      proxy.next({ kind: "resetAfter" });
      const err = await client.authorize(new Request() as never).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GatewayConnectionError);
      expect((err as GatewayConnectionError).keyed).toBe(false);
      expect(proxy.bodies.length - sentBefore).toBe(1); // not sent again
      const [holds] = await db.sql<{ n: number }[]>`select count(*)::int as n from holds where org_id = ${org.id}`;
      expect(holds?.n).toBe(1);
    } finally {
      await client.close();
    }
  });

  it("settles again with the same key after a GatewayConnectionError: the first outcome, charged once", async ({
    app,
    proxy,
    db,
  }) => {
    const { org, client } = await setup(app, proxy, { retries: 1 });
    try {
      const hold = await client.authorize(authorization(org.id));
      // Both attempts are applied (the first) or replayed, and both answers lost.
      proxy.next({ kind: "resetAfter" }, { kind: "resetAfter" });
      const lost = await client.settle(hold.hold_id, usage(org.id, "settle-lost")).catch((e: unknown) => e);
      expect(lost).toBeInstanceOf(GatewayConnectionError);
      expect((lost as GatewayConnectionError).keyed).toBe(true);
      // As the error says: calling again with the same key is safe, and answers the first outcome.
      const again = await client.settle(hold.hold_id, usage(org.id, "settle-lost"));
      expect(again).toMatchObject({ status: "duplicate", hold_id: hold.hold_id, cost_nano_usd: "6750000" });
      const events = await db.sql<{ cost: bigint }[]>`select cost from usage_events where org_id = ${org.id}`;
      expect(events).toEqual([{ cost: 6_750_000n }]);
      await expectLedgerConsistent(db.sql);
    } finally {
      await client.close();
    }
  });

  for (const body of ["null", "{}", '{"results":[]}'])
    it(`treats a 200 whose results cannot be read (${body}) as no answer: keyed calls sent again, the others told they may have been applied`, async ({
      app,
      proxy,
      db,
    }) => {
      const { org, client } = await setup(app, proxy);
      try {
        proxy.next({ kind: "replace", body });
        const [keyed, unkeyed] = await Promise.allSettled([
          client.authorize(authorization(org.id, { idempotency_key: `unreadable-${body}` })),
          client.authorize(authorization(org.id)),
        ]);
        expect(keyed.status === "fulfilled" && keyed.value.replayed).toBe(true);
        expect(unkeyed.status === "rejected" && unkeyed.reason).toBeInstanceOf(GatewayConnectionError);
        expect(unkeyed.status === "rejected" && (unkeyed.reason as GatewayConnectionError).keyed).toBe(false);
        // The first request was applied: both holds exist, once each.
        const holds = await db.sql<{ n: number }[]>`select count(*)::int as n from holds where org_id = ${org.id}`;
        expect(holds[0]?.n).toBe(2);
      } finally {
        await client.close();
      }
    });

  it("gives up on an answer that trickles in once timeoutMs has passed since the request", async ({ app, proxy }) => {
    // One byte every 200 ms: the whole answer would take over a minute, past the test's own timeout.
    const { org, client } = await setup(app, proxy, { timeoutMs: 500 });
    try {
      proxy.next({ kind: "trickle", everyMs: 200 });
      const err = await client.authorize(authorization(org.id)).catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GatewayConnectionError);
      expect(String((err as Error).cause)).toMatch(/no whole answer within 500 ms/);
    } finally {
      await client.close();
    }
  });

  it("refuses alone a call that is not written as a JSON object; its neighbours are served", async ({ app, proxy }) => {
    const { org, client } = await setup(app, proxy);
    try {
      const [good, empty, number] = await Promise.allSettled([
        client.authorize(authorization(org.id)),
        client.authorize({ toJSON: () => undefined } as never),
        client.authorize({ toJSON: () => 5 } as never),
      ]);
      expect(good.status).toBe("fulfilled");
      for (const bad of [empty, number]) {
        expect(bad.status === "rejected" && bad.reason).toBeInstanceOf(GatewayError);
        expect(bad.status === "rejected" && (bad.reason as GatewayError).code).toBe("invalid_request");
      }
    } finally {
      await client.close();
    }
  });

  it("keeps every request under the API's size limit: a call too big alone is refused alone, the rest split", async ({
    app,
    proxy,
  }) => {
    const { org, client } = await setup(app, proxy, { maxRequestBytes: 4096 });
    try {
      const sentBefore = proxy.bodies.length;
      const huge = client.authorize(authorization(org.id, { idempotency_key: "k".repeat(5000) }));
      // Twenty calls of ~350 bytes: over 4 KiB together, so more than one request.
      const calls = Array.from({ length: 20 }, (_, i) =>
        client.authorize(authorization(org.id, { idempotency_key: `${i}-${"k".repeat(200)}` })),
      );
      const err = await huge.catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GatewayError);
      expect({ code: (err as GatewayError).code, status: (err as GatewayError).status }).toEqual({
        code: "payload_too_large",
        status: 413,
      });
      expect(await Promise.all(calls)).toHaveLength(20);
      const sent = proxy.bodies.slice(sentBefore);
      expect(sent.length).toBeGreaterThan(1);
      for (const body of sent) expect(Buffer.byteLength(body)).toBeLessThanOrEqual(4096);
      expect(sent.reduce((n, body) => n + (JSON.parse(body) as { requests: unknown[] }).requests.length, 0)).toBe(20);
    } finally {
      await client.close();
    }
  });

  it("answers a usage it cannot read with a rejected promise, never a throw", async ({ app, proxy }) => {
    const { org, client } = await setup(app, proxy);
    const hostile = {
      ...usage(org.id, "hostile-getter"),
      get quantities(): never {
        throw new Error("no quantities here");
      },
    };
    try {
      let settled: Promise<unknown> | undefined;
      expect(() => {
        settled = client.settle("hold_x", hostile as never);
      }).not.toThrow();
      const err = await settled?.catch((e: unknown) => e);
      expect(err).toBeInstanceOf(GatewayError);
      expect((err as GatewayError).code).toBe("invalid_request");
    } finally {
      await client.close();
    }
  });
});
