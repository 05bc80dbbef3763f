import { describe, expect } from "vitest";
import { appTest as it } from "../../../support/fixtures.js";

describe("GET /v1/billing/auto-topup (getAutoTopup)", () => {
  it("never set: off, every amount 0", async ({ app }) => {
    const org = await app.createOrg();
    const res = await app.call("GET", "/v1/billing/auto-topup", { key: org.orgKey });
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({
      enabled: false,
      threshold_nano_usd: "0",
      amount_nano_usd: "0",
      monthly_limit_nano_usd: "0",
      charged_this_month_nano_usd: "0",
      disabled_reason: null,
    });
  });

  it("needs an org key", async ({ app }) => {
    const org = await app.createOrg();
    expect((await app.call("GET", "/v1/billing/auto-topup", { key: org.gatewayKey })).status).toBe(403);
  });
});
