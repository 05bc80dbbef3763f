import { describe, expect } from "vitest";
import { cardTest as it, payOnPage } from "../../../support/fake-processor.js";
import { findLeaks } from "../../../support/processor.js";

const SETUP_PATH = "/v1/billing/payment-methods/setup";
const urls = { success_url: "https://console.example.com/cards", cancel_url: "https://console.example.com/billing" };

describe("add a card", () => {
  it("a setup session URL; the card typed there appears masked once the processor's webhook arrives", async ({
    app,
    processor,
  }) => {
    const org = await app.createOrg();
    const res = await app.call("POST", SETUP_PATH, { key: org.orgKey, body: urls });
    expect(res.status, res.text).toBe(201);
    expect(res.json).toEqual({
      url: expect.stringContaining("/checkout/pay/cs_test_"),
      expires_at: expect.any(String),
    });
    const session = [...processor.sessions.values()].find((s) => s.url === res.json.url);
    expect(session?.mode).toBe("setup");
    expect((await payOnPage(res.json.url, "5555555555554444")).status).toBe(303);
    await processor.idle();
    const list = await app.call("GET", "/v1/billing/payment-methods", { key: org.orgKey });
    expect(list.json).toEqual({
      payment_methods: [
        { id: expect.stringMatching(/^pm_/), brand: "mastercard", last4: "4444", exp: "12/34", default: false },
      ],
    });
    const processorIds = [...processor.paymentMethods.keys()];
    expect(findLeaks([list.text], processorIds)).toEqual([]);
    // A second setup reuses the org's processor customer.
    await app.call("POST", SETUP_PATH, { key: org.orgKey, body: urls });
    expect([...processor.customers.values()].filter((c) => c.metadata.org_id === org.id)).toHaveLength(1);
  });

  it.for([
    { name: "http URL", body: { ...urls, success_url: "http://example.com/x" } },
    { name: "missing cancel_url", body: { success_url: urls.success_url } },
    { name: "unknown field", body: { ...urls, customer: "cus_x" } },
  ])("400 for $name", async ({ body }, { app }) => {
    const org = await app.createOrg();
    const res = await app.call("POST", SETUP_PATH, { key: org.orgKey, body });
    expect(res.status).toBe(400);
    expect(res.json.error.code).toBe("invalid_request");
  });

  it("503 processor_unavailable when the processor is down", async ({ app, processor }) => {
    const org = await app.createOrg();
    processor.fail({ kind: "5xx" });
    try {
      const res = await app.call("POST", SETUP_PATH, { key: org.orgKey, body: urls });
      expect(res.status).toBe(503);
      expect(res.json.error.code).toBe("processor_unavailable");
    } finally {
      processor.clearFaults();
    }
  });
});
