import { pino } from "pino";
import type { Clock } from "../../src/clock.js";
import { loadConfig, type Config } from "../../src/config.js";
import type { Sql } from "../../src/db/client.js";
import { Metering } from "../../src/billing/metering.js";
import type { LowBalanceCrossing } from "../../src/billing/usage.js";
import { createApp } from "../../src/http/app.js";
import type { AppDeps } from "../../src/http/context.js";

export const TEST_ADMIN_KEY = "hk-test-admin-key-0123456789abcdef";

/** A settable clock: tests move time instead of sleeping. */
export function manualClock(start = new Date("2026-11-15T12:00:00Z")) {
  let now = start.getTime();
  const clock: Clock & { set(d: Date): void; advance(ms: number): void } = Object.assign(() => new Date(now), {
    set: (d: Date) => {
      now = d.getTime();
    },
    advance: (ms: number) => {
      now += ms;
    },
  });
  return clock;
}

export type TestApp = ReturnType<typeof createTestApp>;

/**
 * A JSON reply as the tests read it, by path (`res.json.error.code`), each value whatever the API
 * sent: the one `any` of the tests, named here so that every reply (in process, from an API
 * process, in the model) has this type. The shape is what each test asserts; a caller that wants
 * it checked at compile time uses the typed client (client/index.ts, createBillingClient).
 */
// biome-ignore lint/suspicious/noExplicitAny: replies are read by path; their shape is what the tests assert
export type JsonReply = any;

/** The real app, in-process, against a real database. */
export function createTestApp(opts: {
  sql: Sql;
  clock?: Clock;
  config?: Partial<Record<keyof Config, string>>;
  onCrossings?: (c: LowBalanceCrossing[]) => Promise<void>;
  /** The group commit's lanes (default 2): 1 puts every organization's requests in the same batches. */
  meteringLanes?: number;
  extra?: Partial<Pick<AppDeps, "metrics" | "queues" | "keyCache" | "chain" | "rateLimiter" | "reads">>;
}) {
  const config = loadConfig({ NODE_ENV: "test", ADMIN_API_KEY: TEST_ADMIN_KEY, ...opts.config });
  const clock = opts.clock ?? (() => new Date());
  const metering = new Metering(opts.sql, { onCrossings: opts.onCrossings, lanes: opts.meteringLanes });
  const app = createApp({ sql: opts.sql, config, clock, logger: pino({ level: "silent" }), metering, ...opts.extra });

  async function call(
    method: string,
    path: string,
    init: { key?: string | null; body?: unknown; rawBody?: string; headers?: Record<string, string> } = {},
  ) {
    const headers: Record<string, string> = { ...init.headers };
    if (init.key) headers.authorization = `Bearer ${init.key}`;
    let body: string | undefined;
    if (init.rawBody !== undefined) body = init.rawBody;
    else if (init.body !== undefined) body = JSON.stringify(init.body);
    if (body !== undefined && !Object.keys(headers).some((h) => h.toLowerCase() === "content-type"))
      headers["content-type"] = "application/json";
    const res = await app.request(path, { method, headers, body });
    const text = await res.text();
    let json: JsonReply;
    try {
      json = text ? JSON.parse(text) : undefined;
    } catch {
      json = undefined;
    }
    return { status: res.status, headers: res.headers, json, text };
  }

  /** Creates an organization with an org key (keys:write), and a gateway key (a platform key of no organization). */
  async function createOrg(name = "Acme") {
    const org = await call("POST", "/v1/admin/orgs", { key: TEST_ADMIN_KEY, body: { name } });
    if (org.status !== 201) throw new Error(`create org failed: ${org.text}`);
    const orgKey = await call("POST", `/v1/admin/orgs/${org.json.id}/keys`, {
      key: TEST_ADMIN_KEY,
      body: { scope: "org" },
    });
    const gatewayKey = await call("POST", "/v1/admin/keys", {
      key: TEST_ADMIN_KEY,
      body: { scope: "gateway", name: `gateway for ${name}` },
    });
    return {
      id: org.json.id as string,
      orgKey: orgKey.json.key as string,
      orgKeyId: orgKey.json.id as string,
      gatewayKey: gatewayKey.json.key as string,
    };
  }

  async function grant(
    orgId: string,
    amount: string,
    idempotencyKey = `grant-${Math.random()}`,
    extra: Record<string, unknown> = {},
  ) {
    const res = await call("POST", `/v1/admin/orgs/${orgId}/credits`, {
      key: TEST_ADMIN_KEY,
      headers: { "idempotency-key": idempotencyKey },
      body: { amount, reason: "test grant", ...extra },
    });
    if (res.status !== 201 && res.status !== 200) throw new Error(`grant failed: ${res.text}`);
    return res;
  }

  return { app, config, clock, metering, call, createOrg, grant };
}
