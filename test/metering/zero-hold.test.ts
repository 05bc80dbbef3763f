import { describe, expect } from "vitest";
import { appTest as it } from "../support/fixtures.js";
import { expectLedgerConsistent } from "../support/ledger.js";

describe("a zero hold settled by free usage", () => {
  // Found by the budgets property test: the settled hold named a usage transaction that phase 5
  // never posts when nothing moves (a foreign-key failure at commit, a 500 for the event).
  it("is recorded, the hold settled without a transaction, the ledger untouched", async ({ app, db }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "1");
    const hold = await app.call("POST", "/v1/billing/authorize", {
      key: org.gatewayKey,
      body: { org_id: org.id, product: "llm", model: "zen-pro", estimate: { input_tokens: 0 } },
    });
    expect(hold.status).toBe(201);
    expect(hold.json.amount_nano_usd).toBe("0");
    const usage = await app.call("POST", "/v1/billing/usage", {
      key: org.gatewayKey,
      body: {
        events: [
          {
            idempotency_key: "free-1",
            org_id: org.id,
            timestamp: app.clock().toISOString(),
            product: "llm",
            model: "zen-pro",
            quantities: { input_tokens: 0 },
            hold_id: hold.json.hold_id,
          },
        ],
      },
    });
    expect(usage.json.recorded, usage.text).toBe(1);
    const [row] = await db.sql<{ status: string; close_transaction_id: string | null }[]>`
      select status, close_transaction_id from holds where id = ${hold.json.hold_id}`;
    expect(row).toEqual({ status: "settled", close_transaction_id: null });
    await expectLedgerConsistent(db.sql);
  });
});
