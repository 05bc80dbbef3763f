import { describe, expect } from "vitest";
import { manualClock } from "../../../support/app.js";
import { appTest as it } from "../../../support/fixtures.js";

const PATH = "/v1/billing/auto-topup";
const good = { enabled: true, threshold: "10.00", amount: "50.00", monthly_limit: "200.00" };

describe("PUT /v1/billing/auto-topup (setAutoTopup)", () => {
  const clock = manualClock();
  it.scoped({ appOptions: { clock } });

  it("sets every field and answers it exactly; GET answers the same", async ({ app }) => {
    const org = await app.createOrg();
    const res = await app.call("PUT", PATH, { key: org.orgKey, body: good });
    expect(res.status).toBe(200);
    expect(res.json).toEqual({
      enabled: true,
      threshold: 10,
      threshold_usd: "10",
      threshold_nano_usd: "10000000000",
      amount: 50,
      amount_usd: "50",
      amount_nano_usd: "50000000000",
      monthly_limit: 200,
      monthly_limit_usd: "200",
      monthly_limit_nano_usd: "200000000000",
      charged_this_month: 0,
      charged_this_month_usd: "0",
      charged_this_month_nano_usd: "0",
      disabled_reason: null,
      disabled_at: null,
    });
    const read = await app.call("GET", PATH, { key: org.orgKey });
    expect(read.json).toEqual(res.json);
    const off = await app.call("PUT", PATH, { key: org.orgKey, body: { ...good, enabled: false, amount: "5.01" } });
    expect(off.json).toMatchObject({ enabled: false, amount_nano_usd: "5010000000" });
  });

  it.for<[string, Record<string, unknown>, string]>([
    ["amount below 5.00", { amount: "4.99" }, "amount"],
    ["amount above 10,000.00", { amount: "10000.01" }, "amount"],
    ["amount with a fraction of a cent", { amount: "5.001" }, "amount"],
    ["amount not a decimal", { amount: "fifty" }, "amount"],
    ["amount as a float number", { amount: 50.5 }, "amount"],
    ["negative threshold", { threshold: "-1" }, "threshold"],
    ["threshold with ten decimals", { threshold: "1.0000000001" }, "threshold"],
    ["monthly limit below the amount", { monthly_limit: "49.99" }, "monthly_limit"],
    ["monthly limit zero", { monthly_limit: "0" }, "monthly_limit"],
    ["monthly limit absurd", { monthly_limit: "1e9" }, "monthly_limit"],
    ["enabled not a boolean", { enabled: "yes" }, "enabled"],
    ["a currency field", { currency: "eur" }, ""],
    ["a missing field", { amount: undefined }, "amount"],
  ])("refuses %s: 400 invalid_request naming the field", async ([, change, param], { app }) => {
    const org = await app.createOrg();
    const body = { ...good, ...change };
    const res = await app.call("PUT", PATH, { key: org.orgKey, body });
    expect(res.status).toBe(400);
    expect(res.json.error.code).toBe("invalid_request");
    if (param) expect(res.json.error.param).toBe(param);
    expect((await app.call("GET", PATH, { key: org.orgKey })).json.enabled).toBe(false);
  });

  it("needs an org key", async ({ app }) => {
    const org = await app.createOrg();
    expect((await app.call("PUT", PATH, { body: good })).status).toBe(401);
    expect((await app.call("PUT", PATH, { key: org.gatewayKey, body: good })).status).toBe(403);
  });
});
