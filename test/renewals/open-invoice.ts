import { expect } from "vitest";
import { TEST_ADMIN_KEY } from "../support/app.js";
import type { PaymentsTestApp } from "../support/processor.js";
import { spend, type CardOrg } from "../auto-topup/harness.js";

const DAY = 86_400_000;

/** On the Team plan ($200/month, $250 included), credits spent, a 3-day cycle closed: an open invoice. */
export async function openInvoice(app: PaymentsTestApp, org: CardOrg) {
  const sub = await app.call("PUT", `/v1/admin/orgs/${org.id}/subscription`, {
    key: TEST_ADMIN_KEY,
    body: { plan_id: "team" },
  });
  expect(sub.status).toBe(200);
  await spend(app, org, Number((await app.balanceNano(org.orgKey)) / 1_000_000_000n));
  app.clock.advance(3 * DAY);
  const closed = await app.call("POST", "/v1/admin/cycles/close", {
    key: TEST_ADMIN_KEY,
    body: { org_id: org.id, end_current_cycle_now: true },
  });
  expect(closed.status).toBe(200);
  const list = await app.call("GET", "/v1/billing/invoices", { key: org.orgKey });
  const invoice = list.json.data[0] as { id: string; status: string; amount_due_nano_usd: string; issued_at: string };
  expect(invoice.status).toBe("open");
  return invoice;
}
