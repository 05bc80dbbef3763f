import { createServer, type IncomingMessage, type ServerResponse } from "node:http";
import type { AddressInfo } from "node:net";

type RpcRequest = { jsonrpc: "2.0"; id: number | string | null; method: string; params?: unknown[] };
type RpcResponse = {
  jsonrpc: "2.0";
  id: number | string | null;
  result?: unknown;
  error?: { code: number; message: string };
};

export type ProxiedRequest = { index: number; method: string; params: unknown[] };

export type RpcProxy = {
  url: string;
  /**
   * Answers as a node `blocks` behind the real chain's head (0: in step), as a load-balanced or
   * slow RPC node would: a lower head and finalized block, and no blocks, receipts or logs above
   * its head. Everything else is the real anvil's answer.
   */
  setLag(blocks: number): void;
  /** Runs before each request is forwarded (requests are served one at a time): the place to change the chain between two reads. */
  onRequest(hook: ((req: ProxiedRequest) => Promise<void>) | null): void;
  /** Methods served since the last reset, in order. */
  served(): string[];
  reset(): void;
  close(): Promise<void>;
};

/** A JSON-RPC proxy in front of a real anvil, for the two things anvil cannot be asked to do: lag, and change between two reads. */
export async function startRpcProxy(upstreamUrl: string): Promise<RpcProxy> {
  let lag = 0;
  let hook: ((req: ProxiedRequest) => Promise<void>) | null = null;
  let served: string[] = [];
  let index = 0;
  let queue = Promise.resolve();

  const upstream = async (method: string, params: unknown[] = []): Promise<RpcResponse> => {
    const res = await fetch(upstreamUrl, {
      method: "POST",
      headers: { "content-type": "application/json" },
      body: JSON.stringify({ jsonrpc: "2.0", id: 1, method, params }),
    });
    return (await res.json()) as RpcResponse;
  };
  const num = (hex: unknown) => BigInt(hex as string);
  const hex = (n: bigint) => `0x${n.toString(16)}`;

  async function answer(req: RpcRequest): Promise<RpcResponse> {
    const params = req.params ?? [];
    const i = index++;
    if (hook) await hook({ index: i, method: req.method, params });
    served.push(req.method);
    const reply = (r: Omit<RpcResponse, "jsonrpc" | "id">): RpcResponse => ({ jsonrpc: "2.0", id: req.id, ...r });
    if (lag === 0) return reply(await upstream(req.method, params));

    const realHead = num((await upstream("eth_blockNumber")).result);
    const head = realHead > BigInt(lag) ? realHead - BigInt(lag) : 0n;
    const above = (blockNumber: unknown) =>
      blockNumber !== undefined && blockNumber !== null && num(blockNumber) > head;
    switch (req.method) {
      case "eth_blockNumber":
        return reply({ result: hex(head) });
      case "eth_getBlockByNumber": {
        const [tag, full] = params as [string, boolean];
        let n: bigint;
        if (tag === "latest" || tag === "pending") n = head;
        else if (tag === "finalized" || tag === "safe") {
          const real = (await upstream("eth_getBlockByNumber", [tag, false])).result as { number: string } | null;
          if (!real) return reply({ result: null });
          const behind = realHead - num(real.number);
          n = head > behind ? head - behind : 0n;
        } else if (tag === "earliest") n = 0n;
        else n = num(tag);
        if (n > head) return reply({ result: null });
        return reply(await upstream("eth_getBlockByNumber", [hex(n), full]));
      }
      case "eth_getBlockByHash":
      case "eth_getTransactionReceipt":
      case "eth_getTransactionByHash": {
        const r = await upstream(req.method, params);
        const result = r.result as { number?: string; blockNumber?: string } | null;
        if (result && (above(result.number) || above(result.blockNumber))) return reply({ result: null });
        return reply(r);
      }
      case "eth_getLogs": {
        const filter = params[0] as { blockHash?: string; toBlock?: string };
        if (filter.blockHash) {
          const block = (await upstream("eth_getBlockByHash", [filter.blockHash, false])).result as {
            number: string;
          } | null;
          // What geth answers for a hash it does not have.
          if (!block || above(block.number)) return reply({ error: { code: -32000, message: "unknown block" } });
        } else if (filter.toBlock === undefined || filter.toBlock === "latest" || above(filter.toBlock)) {
          return reply(await upstream(req.method, [{ ...filter, toBlock: hex(head) }]));
        }
        return reply(await upstream(req.method, params));
      }
      default:
        return reply(await upstream(req.method, params));
    }
  }

  const server = createServer((req: IncomingMessage, res: ServerResponse) => {
    let body = "";
    req.on("data", (d) => (body += String(d)));
    req.on("end", () => {
      // One request at a time, in arrival order, so a hook sees the chain exactly between two reads.
      queue = queue.then(async () => {
        try {
          const parsed = JSON.parse(body) as RpcRequest | RpcRequest[];
          const out = Array.isArray(parsed) ? await Promise.all(parsed.map(answer)) : await answer(parsed);
          res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(out));
        } catch (err) {
          res.writeHead(502, { "content-type": "text/plain" }).end(String(err));
        }
      });
    });
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  const { port } = server.address() as AddressInfo;
  return {
    url: `http://127.0.0.1:${port}`,
    setLag: (blocks) => {
      lag = blocks;
    },
    onRequest: (h) => {
      hook = h;
    },
    served: () => [...served],
    reset: () => {
      served = [];
      index = 0;
    },
    close: () => new Promise<void>((resolve) => server.close(() => resolve())),
  };
}
