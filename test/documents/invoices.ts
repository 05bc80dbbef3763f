import { expect } from "vitest";
import { TEST_ADMIN_KEY, type TestApp } from "../support/app.js";

type Org = { id: string; orgKey: string; gatewayKey?: string };
type Clock = { advance(ms: number): void; (): Date };

let seq = 0;

/**
 * Issues one invoice for the org by closing its running cycle now (two days after the last
 * close): `charge` as a queued adjustment line and, with a gateway key, a usage line. With no
 * credits the charge stays due (open); with enough credits it is paid at issue.
 */
export async function issueInvoice(
  app: Pick<TestApp, "call">,
  clock: Clock,
  org: Org,
  o: { charge?: string; usage?: boolean } = {},
): Promise<InvoiceJsonLike> {
  if (o.charge) {
    const adj = await app.call("POST", `/v1/admin/orgs/${org.id}/adjustments`, {
      key: TEST_ADMIN_KEY,
      headers: { "idempotency-key": `doc-adj-${process.pid}-${++seq}` },
      body: { amount: o.charge, description: "Support plan" },
    });
    expect(adj.status, adj.text).toBe(201);
  }
  if (o.usage && org.gatewayKey) {
    const res = await app.call("POST", "/v1/billing/usage", {
      key: org.gatewayKey,
      body: {
        events: [
          {
            idempotency_key: `doc-use-${process.pid}-${++seq}`,
            org_id: org.id,
            timestamp: clock().toISOString(),
            product: "llm",
            model: "zen-pro",
            quantities: { input_tokens: 1234, output_tokens: 567 },
          },
        ],
      },
    });
    expect(res.status, res.text).toBeLessThan(300);
  }
  clock.advance(2 * 86_400_000);
  const closed = await app.call("POST", "/v1/admin/cycles/close", {
    key: TEST_ADMIN_KEY,
    body: { org_id: org.id, end_current_cycle_now: true },
  });
  expect(closed.status, closed.text).toBe(200);
  const list = await app.call("GET", "/v1/billing/invoices?limit=1", { key: org.orgKey });
  const newest = list.json.data[0];
  const full = await app.call("GET", `/v1/billing/invoices/${newest.id}`, { key: org.orgKey });
  expect(full.status).toBe(200);
  return full.json;
}

export type InvoiceJsonLike = {
  id: string;
  number: string;
  status: string;
  subtotal_nano_usd: string;
  amount_due_nano_usd: string;
  credits_applied_nano_usd: string;
  billing_details: Record<string, unknown> | null;
  // biome-ignore lint/suspicious/noExplicitAny: read by path, as every reply in the tests
  [k: string]: any;
};

let keySeq = 0;
/** POST /v1/admin/invoices/{id}/credit-notes with a fresh Idempotency-Key unless given. */
export function creditNote(
  app: Pick<TestApp, "call">,
  invoiceId: string,
  body: Record<string, unknown>,
  idempotencyKey = `cn-${process.pid}-${++keySeq}`,
) {
  return app.call("POST", `/v1/admin/invoices/${invoiceId}/credit-notes`, {
    key: TEST_ADMIN_KEY,
    headers: { "idempotency-key": idempotencyKey },
    body,
  });
}
