import http from "node:http";
import type { AddressInfo, Socket } from "node:net";
import { serve } from "@hono/node-server";
import { appTest } from "./fixtures.js";

/**
 * What the proxy does with one request (queued with `next`; with none queued it passes):
 * - `pass`: forwards it and answers with the server's answer;
 * - `resetBefore`: drops the client's connection without forwarding it (nothing applied);
 * - `status`: answers `code` itself without forwarding (a load balancer's 502, say);
 * - `twice`: forwards it twice at once (a retrying hop), answers with the first answer;
 * - the rest forward it and wait for the whole answer (the request was applied), then:
 *   `resetAfter` drops the connection; `statusAfter` answers `code` instead; `delay` answers after
 *   `ms`; `truncate` sends the head and half the body, then drops the connection; `split` sends
 *   the body in pieces of `chunk` bytes (a valid answer); `trickle` sends one byte every
 *   `everyMs`; `replace` answers 200 with `body`.
 */
export type Fault =
  | { kind: "pass" }
  | { kind: "resetBefore" }
  | { kind: "status"; code: number }
  | { kind: "twice" }
  | { kind: "resetAfter" }
  | { kind: "statusAfter"; code: number }
  | { kind: "delay"; ms: number }
  | { kind: "truncate" }
  | { kind: "split"; chunk: number }
  | { kind: "trickle"; everyMs: number }
  | { kind: "replace"; body: string };

export type FaultProxy = {
  url: string;
  next(...faults: Fault[]): void;
  /** Forgets the faults not used yet. */
  clear(): void;
  /** The bodies of the requests received, in order. */
  bodies: string[];
  close(): Promise<void>;
};

type Answer = { status: number; contentType: string; body: Buffer };

/**
 * An HTTP proxy in front of a real server that fails the way a network or a load balancer does
 * between the server's answer and its client. Requests always reach the server whole.
 */
export async function startFaultProxy(target: { host: string; port: number }): Promise<FaultProxy> {
  const queue: Fault[] = [];
  const bodies: string[] = [];
  const sockets = new Set<Socket>();
  const timers = new Set<NodeJS.Timeout>();
  const agent = new http.Agent({ keepAlive: true });

  // A kept-alive connection the server closed meanwhile fails before the request reached it:
  // that one is sent once more on a new connection, so the proxy adds no fault of its own.
  const forward = (req: http.IncomingMessage, body: Buffer, fresh = false): Promise<Answer> =>
    new Promise<Answer>((resolve, reject) => {
      const upstream = http.request(
        {
          agent,
          host: target.host,
          port: target.port,
          method: req.method,
          path: req.url,
          headers: { ...req.headers, host: `${target.host}:${target.port}` },
        },
        (res) => {
          const chunks: Buffer[] = [];
          res.on("data", (c: Buffer) => chunks.push(c));
          res.on("end", () =>
            resolve({
              status: res.statusCode ?? 0,
              contentType: String(res.headers["content-type"] ?? "application/json"),
              body: Buffer.concat(chunks),
            }),
          );
          res.on("error", reject);
        },
      );
      upstream.on("error", (err) =>
        upstream.reusedSocket && !fresh ? forward(req, body, true).then(resolve, reject) : reject(err),
      );
      upstream.end(body);
    });
  const sleep = (ms: number) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        timers.delete(t);
        resolve();
      }, ms);
      timers.add(t);
    });

  const head = (res: http.ServerResponse, answer: Answer) =>
    res.writeHead(answer.status, { "content-type": answer.contentType, "content-length": answer.body.length });
  const statusPage = (res: http.ServerResponse, code: number) => {
    res.writeHead(code, { "content-type": "text/html" });
    res.end(`<html>${code}</html>`);
  };

  async function serve(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) {
    const fault = queue.shift() ?? { kind: "pass" };
    if (fault.kind === "resetBefore") return req.socket.destroy();
    if (fault.kind === "status") return statusPage(res, fault.code);
    const [answer] = await Promise.all(
      fault.kind === "twice" ? [forward(req, body), forward(req, body)] : [forward(req, body)],
    );
    if (!answer) throw new Error("no answer forwarded");
    switch (fault.kind) {
      case "pass":
      case "twice":
        head(res, answer);
        return res.end(answer.body);
      case "resetAfter":
        return req.socket.destroy();
      case "statusAfter":
        return statusPage(res, fault.code);
      case "delay":
        await sleep(fault.ms);
        if (req.socket.destroyed) return;
        head(res, answer);
        return res.end(answer.body);
      case "truncate":
        head(res, answer);
        res.write(answer.body.subarray(0, Math.floor(answer.body.length / 2)));
        await sleep(20);
        return req.socket.destroy();
      case "split":
        head(res, answer);
        for (let i = 0; i < answer.body.length; i += fault.chunk) res.write(answer.body.subarray(i, i + fault.chunk));
        return res.end();
      case "trickle":
        head(res, answer);
        for (let i = 0; i < answer.body.length && !req.socket.destroyed; i++) {
          res.write(answer.body.subarray(i, i + 1));
          await sleep(fault.everyMs);
        }
        return res.end();
      case "replace":
        res.writeHead(200, { "content-type": "application/json", "content-length": Buffer.byteLength(fault.body) });
        return res.end(fault.body);
    }
  }

  const server = http.createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on("data", (c: Buffer) => chunks.push(c));
    req.on("end", () => {
      const body = Buffer.concat(chunks);
      bodies.push(body.toString("utf8"));
      serve(req, res, body).catch(() => req.socket.destroy());
    });
  });
  server.on("connection", (s) => {
    sockets.add(s);
    s.on("close", () => sockets.delete(s));
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    next: (...faults) => queue.push(...faults),
    clear: () => {
      queue.length = 0;
    },
    bodies,
    async close() {
      for (const t of timers) clearTimeout(t);
      for (const s of sockets) s.destroy();
      agent.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}

/** The file's app served over HTTP on its database, behind a fault proxy (`proxy.url`). */
export const faultProxyTest = appTest.extend<{ proxy: FaultProxy }>({
  proxy: [
    async ({ app }, use) => {
      const server = serve({ fetch: (req: Request) => app.app.fetch(req), hostname: "127.0.0.1", port: 0 });
      await new Promise<void>((resolve) => server.once("listening", () => resolve()));
      const proxy = await startFaultProxy({ host: "127.0.0.1", port: (server.address() as AddressInfo).port });
      try {
        await use(proxy);
      } finally {
        await proxy.close();
        await new Promise<void>((resolve) => server.close(() => resolve()));
      }
    },
    { scope: "file" },
  ],
});
