import { createServer, connect, type Server, type Socket } from "node:net";
import { Redis } from "ioredis";
import { freePort } from "./free-port.js";
import { spawnTracked, stopChild, track, type RunningProcess } from "./process.js";

/**
 * A redis-server of the test's own on a free loopback port (no persistence, DEBUG allowed), for
 * tests that stall, slow down or stop Redis without touching the one every other test shares.
 */
export async function startOwnRedis(): Promise<{
  url: string;
  port: number;
  process: RunningProcess;
  stop(): Promise<void>;
}> {
  const port = await freePort();
  const args = ["--port", String(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"];
  const process = track(spawnTracked("redis-server", [...args, "--enable-debug-command", "yes"]), "redis-server");
  await process.waitForLine(/Ready to accept connections/);
  return { url: `redis://127.0.0.1:${port}`, port, process, stop: () => stopChild(process.child, "SIGKILL") };
}

/** An ioredis connection as bin/api.ts makes it (commands wait while it reconnects), ready. */
export async function connectRedis(url: string): Promise<Redis> {
  const redis = new Redis(url, { maxRetriesPerRequest: null, retryStrategy: () => 100 });
  redis.on("error", () => {});
  await redis.ping();
  return redis;
}

/**
 * A TCP proxy in front of `port` that holds every chunk, in both directions, for `delayMs` (which
 * may be changed while it runs): a slow network or a slow Redis, as a client sees it.
 */
export async function startDelayProxy(port: number, delayMs: number) {
  const sockets = new Set<Socket>();
  const state = { delayMs };
  const server: Server = createServer((client) => {
    const upstream = connect(port, "127.0.0.1");
    sockets.add(client).add(upstream);
    const relay = (from: Socket, to: Socket) =>
      from.on("data", (chunk) => {
        setTimeout(() => to.destroyed || to.write(chunk), state.delayMs);
      });
    relay(client, upstream);
    relay(upstream, client);
    const close = () => {
      client.destroy();
      upstream.destroy();
    };
    client.on("error", close).on("close", close);
    upstream.on("error", close).on("close", close);
  });
  const listenPort = await freePort();
  await new Promise<void>((resolve) => server.listen(listenPort, "127.0.0.1", resolve));
  return {
    url: `redis://127.0.0.1:${listenPort}`,
    setDelay(ms: number) {
      state.delayMs = ms;
    },
    async close() {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
