import http from "node:http";
import type { AddressInfo, Socket } from "node:net";

/**
 * What the proxy does with one request (queued with `next`; with none queued it passes):
 * - `pass`: forwards it and answers with the server's answer;
 * - `resetAfter`: forwards it, waits for the whole answer (the request was applied), then drops
 *   the client's connection;
 * - `trickle`: forwards it, then sends the answer's head and one byte of its body every `everyMs`;
 * - `replace`: forwards it (applied), then answers 200 with `body` instead of the server's answer.
 */
export type Fault =
  | { kind: "pass" }
  | { kind: "resetAfter" }
  | { kind: "trickle"; everyMs: number }
  | { kind: "replace"; body: string };

export type FaultProxy = {
  url: string;
  next(...faults: Fault[]): void;
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

  const forward = (req: http.IncomingMessage, body: Buffer) =>
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
      upstream.on("error", reject);
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

  async function serve(req: http.IncomingMessage, res: http.ServerResponse, body: Buffer) {
    const fault = queue.shift() ?? { kind: "pass" };
    const answer = await forward(req, body);
    switch (fault.kind) {
      case "pass":
        res.writeHead(answer.status, { "content-type": answer.contentType, "content-length": answer.body.length });
        return res.end(answer.body);
      case "resetAfter":
        return req.socket.destroy();
      case "trickle":
        res.writeHead(answer.status, { "content-type": answer.contentType, "content-length": answer.body.length });
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
    bodies,
    async close() {
      for (const t of timers) clearTimeout(t);
      for (const s of sockets) s.destroy();
      agent.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
