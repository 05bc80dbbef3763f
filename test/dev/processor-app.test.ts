import { expect } from "vitest";
import { TEST_ADMIN_KEY } from "../support/app.js";
import { cardTest as it, sdkFor } from "../support/fake-processor.js";

it("the fake's signed webhooks reach the served app and credit a linked org once", async ({ app, processor }) => {
  const stripe = sdkFor(processor);
  const org = await app.createOrg();
  const customer = await stripe.customers.create();
  const link = await app.call("PUT", `/v1/admin/orgs/${org.id}/processor-customer`, {
    key: TEST_ADMIN_KEY,
    body: { customer_id: customer.id },
  });
  expect(link.status).toBe(201);
  processor.setDuplicates(1);
  const pm = await stripe.paymentMethods.attach("pm_card_visa", { customer: customer.id });
  await stripe.paymentIntents.create({
    amount: 1234,
    currency: "usd",
    customer: customer.id,
    payment_method: pm.id,
    off_session: true,
    confirm: true,
  });
  await processor.idle();
  expect(processor.deliveries.every((d) => d.status === 200)).toBe(true);
  expect(await app.balanceNano(org.orgKey)).toBe(12_340_000_000n);
  const cards = await app.call("GET", "/v1/billing/payment-methods", { key: org.orgKey });
  expect(cards.json.payment_methods).toEqual([
    { id: expect.stringMatching(/^pm_/), brand: "visa", last4: "4242", exp: "12/34", default: false },
  ]);
});
