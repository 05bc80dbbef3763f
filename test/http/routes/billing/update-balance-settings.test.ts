import { describe, expect } from "vitest";
import { appTest as it } from "../../../support/fixtures.js";
import { manualClock } from "../../../support/app.js";

describe("PATCH /v1/billing/balance (updateBalanceSettings)", () => {
  const clock = manualClock();
  it.scoped({ dbOptions: { max: 16 }, appOptions: { clock } });

  it("sets the low-balance threshold from a number or an exact string", async ({ app }) => {
    const org = await app.createOrg();
    const asNumber = await app.call("PATCH", "/v1/billing/balance", {
      key: org.orgKey,
      body: { low_balance_threshold: 25.5 },
    });
    expect(asNumber.status).toBe(200);
    expect(asNumber.json.low_balance_threshold).toBe(25.5);
    const asString = await app.call("PATCH", "/v1/billing/balance", {
      key: org.orgKey,
      body: { low_balance_threshold: "0.000000001" },
    });
    expect(asString.json.low_balance_threshold_nano_usd).toBe("1");
  });

  it.for<[unknown]>([[-1], ["-1"], ["1.0000000001"], [1e30], ["ten"], [null], [true]])(
    "refuses %j as a threshold: 400 naming low_balance_threshold",
    async ([bad], { app }) => {
      const org = await app.createOrg();
      const res = await app.call("PATCH", "/v1/billing/balance", {
        key: org.orgKey,
        body: { low_balance_threshold: bad },
      });
      expect(res.status).toBe(400);
      expect(res.json.error.param).toBe("low_balance_threshold");
    },
  );

  it("each of many racing PATCHes of the low-balance threshold answers the value it wrote", async ({ app }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "100");
    const values = Array.from({ length: 60 }, (_, i) => `${i + 1}.25`);
    const responses = await Promise.all(
      values.map((v) =>
        app.call("PATCH", "/v1/billing/balance", { key: org.orgKey, body: { low_balance_threshold: v } }),
      ),
    );
    for (const [i, res] of responses.entries()) {
      expect(res.status).toBe(200);
      expect(res.json.low_balance_threshold_nano_usd, `PATCH to ${values[i]}`).toBe(
        `${(i + 1) * 1_000_000_000 + 250_000_000}`,
      );
      expect(res.json.balance_nano_usd).toBe("100000000000");
    }
  });
});
