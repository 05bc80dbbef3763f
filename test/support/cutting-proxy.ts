import { type AddressInfo, createServer, connect, type Socket } from "node:net";

export type CuttingProxy = {
  url: string;
  /** Cuts the client's connection when each of the next `n` responses starts: the request was served, its answer lost. */
  cutNextResponses(n: number): void;
  /** TCP connections clients opened so far, and how many of them were cut. */
  stats(): { connections: number; cut: number };
  close(): Promise<void>;
};

/**
 * A TCP proxy in front of a real server that can drop a connection after its request went
 * through: what a client sees when a load balancer or the network fails between the server's
 * answer and the client. Everything else is passed through byte for byte.
 */
export async function startCuttingProxy(target: { host: string; port: number }): Promise<CuttingProxy> {
  let toCut = 0;
  let connections = 0;
  let cut = 0;
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    connections++;
    const upstream = connect(target.port, target.host);
    sockets.add(client);
    sockets.add(upstream);
    const close = () => {
      client.destroy();
      upstream.destroy();
      sockets.delete(client);
      sockets.delete(upstream);
    };
    client.on("data", (chunk) => upstream.write(chunk));
    upstream.on("data", (chunk) => {
      if (toCut > 0) {
        toCut--;
        cut++;
        return close();
      }
      client.write(chunk);
    });
    client.on("error", close);
    upstream.on("error", close);
    client.on("close", close);
    upstream.on("close", close);
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    cutNextResponses(n) {
      toCut = n;
    },
    stats: () => ({ connections, cut }),
    close() {
      for (const s of sockets) s.destroy();
      return new Promise((resolve) => server.close(() => resolve()));
    },
  };
}
