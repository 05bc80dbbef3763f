import { describe, expect } from "vitest";
import { cardTest as it } from "../../../support/fake-processor.js";
import { orgWithCards } from "../../../support/saved-cards.js";

const path = (id: string) => `/v1/billing/payment-methods/${id}`;

describe("remove a card", () => {
  it("detached at the processor and gone from the list at once; the row is kept, marked detached", async ({
    app,
    processor,
    db,
  }) => {
    const org = await orgWithCards(app, processor, ["4242424242424242", "5555555555554444"]);
    const visa = org.methods.find((m) => m.last4 === "4242");
    await app.call("POST", `${path(visa?.id as string)}/default`, { key: org.orgKey });
    const res = await app.call("DELETE", path(visa?.id as string), { key: org.orgKey });
    expect(res.status, res.text).toBe(200);
    expect(res.json).toEqual({ id: visa?.id, brand: "visa", last4: "4242", exp: "12/34", default: false });
    expect(
      [...processor.paymentMethods.values()].filter((p) => p.customer === org.customerId).map((p) => p.card.last4),
    ).toEqual(["4444"]);
    const list = await app.call("GET", "/v1/billing/payment-methods", { key: org.orgKey });
    expect(list.json.payment_methods.map((m: { last4: string }) => m.last4)).toEqual(["4444"]);
    await processor.idle(); // payment_method.detached and customer.updated arrive: nothing changes
    const [row] = await db.sql<{ detached_at: Date | null; is_default: boolean }[]>`
      select detached_at, is_default from payment_methods where id = ${visa?.id as string}`;
    expect(row?.detached_at).toBeInstanceOf(Date);
    expect(row?.is_default).toBe(false);
    // Removing it again: it is no longer there.
    expect((await app.call("DELETE", path(visa?.id as string), { key: org.orgKey })).status).toBe(404);
  });

  it("a card already gone at the processor is removed here all the same; another org's card is 404", async ({
    app,
    processor,
  }) => {
    const org = await orgWithCards(app, processor, ["4242424242424242"]);
    const other = await orgWithCards(app, processor, ["4242424242424242"]);
    expect((await app.call("DELETE", path(other.methods[0]?.id as string), { key: org.orgKey })).status).toBe(404);
    processor.setWebhookMode("hold");
    try {
      const pm = [...processor.paymentMethods.values()].find((p) => p.customer === org.customerId);
      const sdk = (await import("../../../support/fake-processor.js")).sdkFor(processor);
      await sdk.paymentMethods.detach(pm?.id as string);
      const res = await app.call("DELETE", path(org.methods[0]?.id as string), { key: org.orgKey });
      expect(res.status, res.text).toBe(200);
      processor.discard();
    } finally {
      processor.setWebhookMode("auto");
    }
    expect((await app.call("GET", "/v1/billing/payment-methods", { key: org.orgKey })).json.payment_methods).toEqual(
      [],
    );
  });

  it("503 processor_unavailable while the processor is unreachable; the card stays", async ({ app, processor }) => {
    const org = await orgWithCards(app, processor, ["4242424242424242"]);
    processor.fail({ kind: "unreachable" });
    try {
      const res = await app.call("DELETE", path(org.methods[0]?.id as string), { key: org.orgKey });
      expect(res.status).toBe(503);
      expect(res.json.error.code).toBe("processor_unavailable");
    } finally {
      processor.clearFaults();
    }
    expect(
      (await app.call("GET", "/v1/billing/payment-methods", { key: org.orgKey })).json.payment_methods,
    ).toHaveLength(1);
  });
});
