import type { FakeProcessor } from "../../dev/processor/server.js";
import type { PaymentsTestApp } from "./processor.js";

/** An org with `cards` saved through a setup session, as listed by the API (our ids). */
export async function orgWithCards(app: PaymentsTestApp, processor: FakeProcessor, cards: string[]) {
  const org = await app.createOrg();
  const setup = await app.call("POST", "/v1/billing/payment-methods/setup", {
    key: org.orgKey,
    body: { success_url: "https://example.com/ok", cancel_url: "https://example.com/no" },
  });
  if (setup.status !== 201) throw new Error(`setup failed: ${setup.text}`);
  const customer = [...processor.customers.values()].find((c) => c.metadata.org_id === org.id);
  if (!customer) throw new Error("no processor customer");
  for (const card of cards) {
    processor.addCard(customer.id, card);
    // Distinct event times, so the list order is the order added.
    await processor.idle();
  }
  const list = await app.call("GET", "/v1/billing/payment-methods", { key: org.orgKey });
  return { ...org, customerId: customer.id, methods: list.json.payment_methods as { id: string; last4: string }[] };
}
