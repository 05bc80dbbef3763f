import { createServer } from "node:http";
import type { AddressInfo } from "node:net";
import type { Sql } from "../../src/db/client.js";

export type RpcReq = { jsonrpc: "2.0"; id: number; method: string; params?: unknown[] };

/**
 * A JSON-RPC node in front of anvil (used by test/deposits/flip-back.test.ts and revival-stories-property.test.ts)
 * that also counts every request by method. `lie` returns the result to answer instead
 * (`"fork-block"`: anvil's block with another hash and no transactions), or undefined to pass.
 */
export async function startLyingNode(upstreamUrl: string, lie: (r: RpcReq) => unknown) {
  const counts = new Map<string, number>();
  const up = async (r: RpcReq) =>
    (await (
      await fetch(upstreamUrl, {
        method: "POST",
        headers: { "content-type": "application/json" },
        body: JSON.stringify(r),
      })
    ).json()) as { result?: unknown };
  const one = async (r: RpcReq) => {
    counts.set(r.method, (counts.get(r.method) ?? 0) + 1);
    const lied = lie(r);
    if (lied === "fork-block") {
      const real = (await up(r)).result as Record<string, unknown>;
      return { jsonrpc: "2.0", id: r.id, result: { ...real, hash: `0x${"ab".repeat(32)}`, transactions: [] } };
    }
    if (lied !== undefined) return { jsonrpc: "2.0", id: r.id, result: lied };
    return { ...(await up(r)), id: r.id };
  };
  const server = createServer((req, res) => {
    let body = "";
    req.on("data", (d) => (body += String(d)));
    req.on("end", async () => {
      const parsed = JSON.parse(body) as RpcReq | RpcReq[];
      const out = Array.isArray(parsed) ? await Promise.all(parsed.map(one)) : await one(parsed);
      res.writeHead(200, { "content-type": "application/json" }).end(JSON.stringify(out));
    });
  });
  await new Promise<void>((r) => server.listen(0, "127.0.0.1", r));
  return {
    url: `http://127.0.0.1:${(server.address() as AddressInfo).port}`,
    counts: () => Object.fromEntries(counts),
    total: () => [...counts.values()].reduce((a, b) => a + b, 0),
    reset: () => counts.clear(),
    close: () => new Promise<void>((r) => server.close(() => r())),
  };
}

/** Credits and reversals the ledger holds for a deposit. */
export async function movementsOf(sql: Sql, id: string) {
  const [r] = await sql<{ credits: number; reversals: number; net: string }[]>`
    select count(distinct t.id) filter (where t.kind = 'husd_deposit')::int as credits,
           count(distinct t.id) filter (where t.kind = 'reversal')::int as reversals,
           coalesce(sum(e.amount) filter (where e.account_id like 'org:%'), 0)::text as net
    from ledger_transactions t left join ledger_entries e on e.transaction_id = t.id
    where t.metadata->>'deposit_id' = ${id} and t.kind in ('husd_deposit', 'reversal')`;
  return { credits: r!.credits, reversals: r!.reversals, net: BigInt(r!.net) };
}
