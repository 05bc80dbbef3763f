import { describe, expect } from "vitest";
import { manualClock } from "../../../support/app.js";
import { appTest as it } from "../../../support/fixtures.js";

describe("GET /v1/billing/balance (getBalance)", () => {
  const clock = manualClock();
  it.scoped({ appOptions: { clock } });

  it("returns exactly the seed's shape plus exact fields", async ({ app }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "142.87");
    const res = await app.call("GET", "/v1/billing/balance", { key: org.orgKey });
    expect(res.status).toBe(200);
    expect(res.text.startsWith('{"currency":"USD","balance":142.87,"credits":142.87,"low_balance_threshold":10,')).toBe(
      true,
    );
    expect(res.json).toEqual({
      currency: "USD",
      balance: 142.87,
      credits: 142.87,
      low_balance_threshold: 10,
      balance_nano_usd: "142870000000",
      credits_nano_usd: "142870000000",
      held_nano_usd: "0",
      low_balance_threshold_nano_usd: "10000000000",
    });
  });
});
