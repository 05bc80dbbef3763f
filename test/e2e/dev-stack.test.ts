import { mkdtemp, readFile } from "node:fs/promises";
import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import { tmpdir } from "node:os";
import { join } from "node:path";
import type { ChildProcess } from "node:child_process";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import type { Address } from "viem";
import { husdAbi } from "../../abis/index.js";
import { DevRoles, devClients } from "../../src/chain/local-devnet.js";
import type { JsonReply } from "../support/app.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { freePort } from "../support/free-port.js";
import { spawnTracked, waitFor } from "../support/process.js";
import { uniqueRedisPrefix } from "../support/redis.js";

/** What `npm run dev` writes to dev.json (bin/dev.ts), as far as this test reads it. */
type DevState = {
  api_url: string;
  processor_url: string; // null with a real card processor; this test runs the fake one
  rpc_url: string;
  chain_id: number;
  husd_address: Address;
  org_id: string;
  org_key: string;
  gateway_key: string;
  admin_key: string;
};

/** A newcomer's path, automated: `npm run dev`, use it, Ctrl-C. */
describe("npm run dev", () => {
  let db: TestDatabase;
  let dev: ChildProcess;
  let output = "";
  let stateDir: string;
  let state: DevState;
  let ports: { anvil: number; api: number; ponder: number; processor: number };
  beforeAll(async () => {
    db = await createTestDatabase();
    stateDir = await mkdtemp(join(tmpdir(), "hanzo-dev-"));
    ports = { anvil: await freePort(), api: await freePort(), ponder: await freePort(), processor: await freePort() };
    // Its own process group (spawnTracked), so SIGINT below reaches it the way Ctrl-C would.
    dev = spawnTracked("npm", ["run", "dev"], {
      env: {
        ...process.env,
        DATABASE_URL: db.appUrl,
        DATABASE_OWNER_URL: db.url,
        DEV_STATE_DIR: stateDir,
        DEV_ANVIL_PORT: String(ports.anvil),
        PORT: String(ports.api),
        PONDER_PORT: String(ports.ponder),
        DEV_PROCESSOR_PORT: String(ports.processor),
        STRIPE_SECRET_KEY: "",
        REDIS_PREFIX: uniqueRedisPrefix("dev"),
      },
    });
    dev.stdout!.on("data", (d) => (output += String(d)));
    dev.stderr!.on("data", (d) => (output += String(d)));
    await waitFor(() => output.includes("Hanzo Billing is running"), {
      timeoutMs: 120_000,
      intervalMs: 250,
      what: `dev stack up:\n${output.slice(-3000)}`,
    });
    state = JSON.parse(await readFile(join(stateDir, "dev.json"), "utf8"));
  }, 150_000);
  afterAll(async () => {
    try {
      process.kill(-dev.pid!, "SIGKILL");
    } catch {
      // already gone
    }
    await db?.drop();
  });

  const api = async (path: string, key?: string, init: RequestInit = {}) => {
    const res = await fetch(`${state.api_url}${path}`, {
      ...init,
      headers: { ...(key ? { authorization: `Bearer ${key}` } : {}), "content-type": "application/json" },
    });
    return { status: res.status, json: (await res.json()) as JsonReply };
  };

  it("prints the URLs, keys and curl commands, and writes them to dev.json", () => {
    expect(state.api_url).toBe(`http://127.0.0.1:${ports.api}`);
    for (const k of ["org_key", "gateway_key", "admin_key"] as const) expect(output).toContain(state[k]);
    expect(output.match(/curl /g)?.length).toBeGreaterThanOrEqual(3);
    for (const label of ["[dev]", "[indexer]", "[api]", "[worker]"]) expect(output).toContain(label);
  });

  it("prints a billing portal link that opens once into a session", async () => {
    const url = /Portal\s+(http:\/\/\S+\/portal\/open\?token=\S+)/.exec(output)?.[1];
    if (!url) throw new Error(`no portal link in:\n${output.slice(-2000)}`);
    // The link's page names the org and posts the token from its button (a fetch of the page uses nothing up).
    const shown = await fetch(url, { redirect: "manual" });
    expect(shown.status).toBe(200);
    expect(await shown.text()).toContain("Continue to billing");
    const opened = await fetch(new URL("/portal/open", url), {
      method: "POST",
      redirect: "manual",
      headers: { "content-type": "application/x-www-form-urlencoded", origin: new URL(url).origin },
      body: new URLSearchParams({ token: new URL(url).searchParams.get("token") ?? "" }),
    });
    expect(opened.status).toBe(303);
    const cookie = /hanzo_portal=([^;]+)/.exec(opened.headers.get("set-cookie") ?? "")?.[1];
    const page = await fetch(`${state.api_url}/portal/`, { headers: { cookie: `hanzo_portal=${cookie}` } });
    expect(page.status).toBe(200);
    expect(await page.text()).toContain('<div id="app">');
    expect((await fetch(url, { redirect: "manual" })).status).toBe(410);
  });

  it("serves balance and pricing, and credits a HUSD deposit end to end", async () => {
    const balance = await api("/v1/billing/balance", state.org_key);
    expect(balance.json).toMatchObject({ currency: "USD", balance: 25, credits: 25 });
    expect((await api("/v1/pricing/models")).json.models.length).toBeGreaterThan(0);
    const address = (await api("/v1/billing/husd/deposit-address", state.org_key)).json.address;
    const wallet = devClients(state.rpc_url, state.chain_id).wallet(DevRoles.customer);
    const hash = await wallet.writeContract({
      address: state.husd_address,
      abi: husdAbi,
      functionName: "transfer",
      args: [address, 10n * 10n ** 18n],
    });
    await waitFor(async () => (await api("/v1/billing/balance", state.org_key)).json.balance === 35, {
      timeoutMs: 60_000,
      intervalMs: 500,
      what: "deposit credited by the running stack",
    });
    const deposits = (await api("/v1/billing/husd/deposits", state.org_key)).json.data;
    expect(deposits.find((d: { tx_hash: string }) => d.tx_hash === hash)?.state).toBe("credited");
  });

  it("tops up by card through the fake processor, as the printed commands say", async () => {
    expect(state.processor_url).toBe(`http://127.0.0.1:${ports.processor}`);
    expect(output).toContain("/v1/billing/topups");
    const before = (await api("/v1/billing/balance", state.org_key)).json.balance;
    const res = await fetch(`${state.api_url}/v1/billing/topups`, {
      method: "POST",
      headers: {
        authorization: `Bearer ${state.org_key}`,
        "content-type": "application/json",
        "idempotency-key": "dev-stack-card",
      },
      body: JSON.stringify({
        amount: "25.00",
        success_url: `http://localhost:${ports.api}/docs`,
        cancel_url: `http://localhost:${ports.api}/docs`,
      }),
    });
    const topup = (await res.json()) as { id: string; url: string; status: string };
    expect(res.status).toBe(201);
    expect(topup.url.startsWith(state.processor_url)).toBe(true);
    const paid = await fetch(topup.url, {
      method: "POST",
      body: new URLSearchParams({ card: "4242424242424242" }),
      redirect: "manual",
    });
    expect(paid.status).toBe(303);
    await waitFor(async () => (await api("/v1/billing/balance", state.org_key)).json.balance === before + 25, {
      timeoutMs: 30_000,
      what: "card top-up credited",
    });
    const list = (await api("/v1/billing/topups", state.org_key)).json.data;
    expect(list[0]).toMatchObject({ id: topup.id, method: "card", status: "succeeded" });
  });

  it("lets a webhook point at a receiver on this machine (WEBHOOK_ALLOW_LOCALHOST) and sends it test.ping", async () => {
    const received: string[] = [];
    const receiver = createServer((req, res) => {
      let body = "";
      req.on("data", (d) => (body += String(d)));
      req.on("end", () => {
        received.push(body);
        res.end("ok");
      });
    });
    await new Promise<void>((r) => receiver.listen(0, "127.0.0.1", () => r()));
    try {
      const port = (receiver.address() as AddressInfo).port;
      const created = await api("/v1/billing/webhooks", state.org_key, {
        method: "POST",
        body: JSON.stringify({ url: `http://127.0.0.1:${port}/hooks`, events: ["test.ping"] }),
      });
      expect(created.status).toBe(201);
      const ping = await api(`/v1/billing/webhooks/${created.json.id}/test`, state.org_key, { method: "POST" });
      expect(ping.status).toBeLessThan(300);
      await waitFor(async () => received.some((b) => b.includes('"test.ping"')), {
        timeoutMs: 30_000,
        intervalMs: 100,
        what: "test.ping at the local receiver",
      });
    } finally {
      await new Promise((r) => receiver.close(r));
    }
  });

  it("stops every child cleanly on SIGINT", async () => {
    const exited = new Promise<{ code: number | null; signal: string | null }>((resolve) =>
      dev.once("exit", (code, signal) => resolve({ code, signal })),
    );
    process.kill(-dev.pid!, "SIGINT"); // Ctrl-C: the whole foreground process group
    const { code, signal } = await exited;
    expect(code === 0 || signal === "SIGINT", `npm exited ${code} ${signal}`).toBe(true);
    // Every process of the stack is gone: nothing answers on its ports, nothing is left in the group.
    const closed = async (port: number) =>
      fetch(`http://127.0.0.1:${port}/`).then(
        () => false,
        () => true,
      );
    await waitFor(
      async () => (await closed(ports.anvil)) && (await closed(ports.api)) && (await closed(ports.ponder)),
      { timeoutMs: 30_000, what: "ports closed" },
    );
    await waitFor(
      () => {
        try {
          process.kill(-dev.pid!, 0);
          return false;
        } catch {
          return true;
        }
      },
      { timeoutMs: 30_000, what: "process group empty" },
    );
    expect(output).toContain("[dev] \x1b[0mstopping".replace("[dev] \x1b[0m", "")); // the orderly path ran
  }, 60_000);

  it("a second run reuses the chain, database, org and keys", async () => {
    const again = spawnTracked("npm", ["run", "dev"], {
      env: {
        ...process.env,
        DATABASE_URL: db.appUrl,
        DATABASE_OWNER_URL: db.url,
        DEV_STATE_DIR: stateDir,
        DEV_ANVIL_PORT: String(ports.anvil),
        PORT: String(ports.api),
        PONDER_PORT: String(ports.ponder),
        DEV_PROCESSOR_PORT: String(ports.processor),
        STRIPE_SECRET_KEY: "",
        REDIS_PREFIX: uniqueRedisPrefix("dev2"),
      },
    });
    let out = "";
    again.stdout!.on("data", (d) => (out += String(d)));
    again.stderr!.on("data", (d) => (out += String(d)));
    try {
      await waitFor(() => out.includes("Hanzo Billing is running"), {
        timeoutMs: 120_000,
        intervalMs: 250,
        what: `second run up:\n${out.slice(-3000)}`,
      });
      const second = JSON.parse(await readFile(join(stateDir, "dev.json"), "utf8"));
      expect(second).toMatchObject({
        org_id: state.org_id,
        org_key: state.org_key,
        husd_address: state.husd_address,
        admin_key: state.admin_key,
      });
      expect(out).not.toContain("created demo organization");
      // The credited deposit and card top-up are still there.
      expect((await api("/v1/billing/balance", state.org_key)).json.balance).toBe(60);
      // The fake processor starts empty; the org's customer linked by the first run still works.
      const again = await fetch(`${state.api_url}/v1/billing/topups`, {
        method: "POST",
        headers: {
          authorization: `Bearer ${state.org_key}`,
          "content-type": "application/json",
          "idempotency-key": "dev-stack-card-2",
        },
        body: JSON.stringify({
          amount: "5.00",
          success_url: "https://example.com/",
          cancel_url: "https://example.com/",
        }),
      });
      expect(again.status).toBe(201);
    } finally {
      process.kill(-again.pid!, "SIGINT");
      await new Promise((r) => again.once("exit", r));
    }
  }, 150_000);
});
