import { describe, expect } from "vitest";
import { cardTest as it, sdkFor } from "../../../support/fake-processor.js";
import { orgWithCards } from "../../../support/saved-cards.js";

const path = (id: string) => `/v1/billing/payment-methods/${id}/default`;

describe("default card", () => {
  it("set at the processor's customer and shown at once, masked; the webhook agrees", async ({ app, processor }) => {
    const org = await orgWithCards(app, processor, ["4242424242424242", "5555555555554444"]);
    const mastercard = org.methods.find((m) => m.last4 === "4444");
    const res = await app.call("POST", path(mastercard?.id as string), { key: org.orgKey });
    expect(res.status, res.text).toBe(200);
    expect(res.json).toEqual({ id: mastercard?.id, brand: "mastercard", last4: "4444", exp: "12/34", default: true });
    const pm = [...processor.paymentMethods.values()].find(
      (p) => p.customer === org.customerId && p.card.last4 === "4444",
    );
    expect(processor.customers.get(org.customerId)?.invoice_settings.default_payment_method).toBe(pm?.id);
    await processor.idle();
    const list = await app.call("GET", "/v1/billing/payment-methods", { key: org.orgKey });
    expect(list.json.payment_methods.map((m: { last4: string; default: boolean }) => [m.last4, m.default])).toEqual([
      ["4444", true],
      ["4242", false],
    ]);
    // Switching moves the flag.
    const visa = org.methods.find((m) => m.last4 === "4242");
    await app.call("POST", path(visa?.id as string), { key: org.orgKey });
    await processor.idle();
    const after = await app.call("GET", "/v1/billing/payment-methods", { key: org.orgKey });
    expect(after.json.payment_methods.filter((m: { default: boolean }) => m.default)).toEqual([
      expect.objectContaining({ last4: "4242" }),
    ]);
  });

  it("404 for another org's card or an unknown id; 400 for a malformed id", async ({ app, processor }) => {
    const mine = await orgWithCards(app, processor, ["4242424242424242"]);
    const theirs = await orgWithCards(app, processor, ["4242424242424242"]);
    const foreign = await app.call("POST", path(theirs.methods[0]?.id as string), { key: mine.orgKey });
    expect(foreign.status).toBe(404);
    expect(foreign.json.error.code).toBe("not_found");
    expect((await app.call("POST", path("pm_doesnotexist"), { key: mine.orgKey })).status).toBe(404);
    expect((await app.call("POST", path("cus_123"), { key: mine.orgKey })).status).toBe(400);
  });

  it("a card already gone at the processor is 404 and leaves the list, not a server error", async ({
    app,
    processor,
  }) => {
    const org = await orgWithCards(app, processor, ["4242424242424242", "5555555555554444"]);
    const visa = org.methods.find((m) => m.last4 === "4242");
    processor.setWebhookMode("hold");
    try {
      const pm = [...processor.paymentMethods.values()].find(
        (p) => p.customer === org.customerId && p.card.last4 === "4242",
      );
      await sdkFor(processor).paymentMethods.detach(pm?.id as string);
      const res = await app.call("POST", path(visa?.id as string), { key: org.orgKey });
      expect(res.status, res.text).toBe(404);
      expect(res.json.error).toMatchObject({ code: "not_found", param: "id" });
      processor.discard();
    } finally {
      processor.setWebhookMode("auto");
    }
    const list = await app.call("GET", "/v1/billing/payment-methods", { key: org.orgKey });
    expect(list.json.payment_methods.map((m: { last4: string }) => m.last4)).toEqual(["4444"]);
  });
});
