import { existsSync, readFileSync } from "node:fs";
import { type Address, getAddress, type Hex } from "viem";
import { husdAbi } from "../abis/index.js";
import { createBillingClient } from "../client/index.js";
import { DevRoles, devClients } from "../src/chain/local-devnet.js";

/**
 * npm run demo (with npm run dev running): money moving end to end, narrated. Sends HUSD to the
 * demo org's deposit address and follows it to the credit, meters a few requests (one of them
 * refused with 402), ends the billing cycle and prints the invoice.
 */
// The state `npm run dev` wrote: in DEV_STATE_DIR when set, as dev writes it.
const STATE = `${process.env.DEV_STATE_DIR ?? new URL("../.hanzo", import.meta.url).pathname}/dev.json`;
if (!existsSync(STATE)) {
  console.error(
    `No ${STATE}: start the stack first with \`npm run dev\` (with the same DEV_STATE_DIR), then run \`npm run demo\` in another terminal.`,
  );
  process.exit(1);
}
const s = JSON.parse(readFileSync(STATE, "utf8")) as {
  api_url: string;
  rpc_url: string;
  chain_id: number;
  husd_address: Address;
  org_id: string;
  org_key: string;
  gateway_key: string;
  admin_key: string;
};

const org = createBillingClient(s.api_url, s.org_key);
const gateway = createBillingClient(s.api_url, s.gateway_key);
const admin = createBillingClient(s.api_url, s.admin_key);

/** The body of a successful call; any other answer stops the demo with the API's own error. */
async function ok<T>(call: Promise<{ data?: T; error?: unknown; response: Response }>): Promise<T> {
  const { data, error, response } = await call;
  if (data === undefined) throw new Error(`${response.url} answered ${response.status}: ${JSON.stringify(error)}`);
  return data;
}
const step = (n: number, text: string) => console.log(`\n\x1b[1m${n}. ${text}\x1b[0m`);
const usd = (b: { balance: number; credits: number }) => `balance $${b.balance} (spendable $${b.credits})`;

try {
  await fetch(`${s.api_url}/healthz`);
} catch {
  console.error(`The API at ${s.api_url} does not answer: is \`npm run dev\` still running?`);
  process.exit(1);
}

step(1, "The demo org's balance");
console.log(`   ${usd(await ok(org.GET("/v1/billing/balance")))}`);

step(2, "Send 50 HUSD from a wallet to the org's deposit address");
const address = await ok(org.GET("/v1/billing/husd/deposit-address"));
console.log(`   deposit address ${address.address} on chain ${address.chain_id}; ${address.finality}`);
const wallet = devClients(s.rpc_url, s.chain_id).wallet(DevRoles.customer);
const hash: Hex = await wallet.writeContract({
  address: s.husd_address,
  abi: husdAbi,
  functionName: "transfer",
  args: [getAddress(address.address), 50n * 10n ** 18n],
});
await wallet.waitForTransactionReceipt({ hash, pollingInterval: 250 });
console.log(`   sent: ${hash}`);
await ok(org.POST("/v1/billing/husd/topups", { body: { tx_hash: hash } }));

let last = "";
const started = Date.now();
for (;;) {
  const deposit = (await ok(org.GET("/v1/billing/husd/deposits"))).data.find((d) => d.tx_hash === hash);
  const state = deposit ? `${deposit.state} (${deposit.confirmations} confirmations)` : "waiting for the indexer";
  if (state !== last) {
    console.log(`   ${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s  ${state}`);
    last = state;
  }
  if (deposit?.state === "credited") break;
  if (deposit && ["orphaned", "rejected"].includes(deposit.state)) throw new Error(`deposit ended ${deposit.state}`);
  if (Date.now() - started > 120_000)
    throw new Error("the deposit was not credited within 2 minutes: are the worker and indexer running?");
  await new Promise((r) => setTimeout(r, 500));
}
console.log(`   ${usd(await ok(org.GET("/v1/billing/balance")))}`);

step(3, "The gateway authorizes and settles three LLM requests");
for (let i = 1; i <= 3; i++) {
  const hold = await ok(
    gateway.POST("/v1/billing/authorize", {
      body: {
        org_id: s.org_id,
        product: "llm",
        model: "zen-pro",
        estimate: { input_tokens: 2000, output_tokens: 1000 },
      },
    }),
  );
  const used = await ok(
    gateway.POST("/v1/billing/usage", {
      body: {
        events: [
          {
            idempotency_key: `demo-${Date.now()}-${i}`,
            org_id: s.org_id,
            timestamp: new Date().toISOString(),
            product: "llm",
            model: "zen-pro",
            quantities: { input_tokens: 1800, output_tokens: 700 },
            hold_id: hold.hold_id,
          },
        ],
      },
    }),
  );
  const result = used.results[0];
  console.log(`   request ${i}: held $${hold.amount}, charged $${result?.cost} (${result?.hold_outcome})`);
}

step(4, "A request the balance cannot cover gets 402");
const big = await gateway.POST("/v1/billing/authorize", {
  body: {
    org_id: s.org_id,
    product: "llm",
    model: "zen-max",
    estimate: { input_tokens: 100_000_000, output_tokens: 10_000_000 },
  },
});
console.log(`   ${big.response.status} ${big.error?.error.code}: ${big.error?.error.message}`);

step(5, "Usage this cycle, by product and model");
const usage = await ok(org.GET("/v1/billing/usage", { params: { query: { period: "current" } } }));
for (const p of usage.products)
  for (const m of p.models)
    console.log(`   ${p.product}/${m.model ?? "-"}: $${m.cost} for ${JSON.stringify(m.quantities)}`);

step(6, "End the billing cycle now and print the invoice");
await ok(admin.POST("/v1/admin/cycles/close", { body: { org_id: s.org_id, end_current_cycle_now: true } }));
const [latest] = (await ok(org.GET("/v1/billing/invoices", { params: { query: { limit: 1 } } }))).data;
if (!latest) throw new Error("closing the cycle made no invoice");
const invoice = await ok(org.GET("/v1/billing/invoices/{id}", { params: { path: { id: latest.id } } }));
console.log(`   ${invoice.number}  ${invoice.period.start} → ${invoice.period.end}  status ${invoice.status}`);
for (const l of invoice.lines ?? []) console.log(`     ${l.description.padEnd(40)} $${l.amount}`);
console.log(
  `     ${"subtotal".padEnd(40)} $${invoice.subtotal}\n     ${"credits applied".padEnd(40)} $${invoice.credits_applied}\n     ${"amount due".padEnd(40)} $${invoice.amount_due}`,
);
console.log(`\n   ${usd(await ok(org.GET("/v1/billing/balance")))}\n`);
