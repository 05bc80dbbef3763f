import { describe, expect } from "vitest";
import { TEST_ADMIN_KEY } from "../support/app.js";
import {
  cardPaymentMethod,
  type PaymentsTestApp,
  paymentsTest as it,
  customer,
  findLeaks,
  processorId,
  TEST_WEBHOOK_SECRET,
} from "../support/processor.js";

const OUR_ID = /^pm_[0-9A-Za-z]{20}$/;

describe("saved payment methods from processor events, GET /v1/billing/payment-methods", () => {
  const used: string[] = [];
  const id = (prefix: Parameters<typeof processorId>[0]) => {
    const value = processorId(prefix);
    used.push(value);
    return value;
  };

  it.scoped({ dbOptions: { max: 12 } });

  const list = async (app: PaymentsTestApp, orgKey: string) => {
    const res = await app.call("GET", "/v1/billing/payment-methods", { key: orgKey });
    expect(res.status, res.text).toBe(200);
    return res;
  };
  const attach = (
    app: PaymentsTestApp,
    customerId: string | null,
    pm: string,
    card: Partial<Parameters<typeof cardPaymentMethod>[0]> = {},
    created?: number,
  ) =>
    app.deliver(
      app.event("payment_method.attached", cardPaymentMethod({ id: pm, customer: customerId, ...card }), { created }),
    );
  const setDefault = (app: PaymentsTestApp, customerId: string, pm: string | null, created?: number) =>
    app.deliver(app.event("customer.updated", customer({ id: customerId, defaultPaymentMethod: pm }), { created }));

  it("attach, make default, add another, switch the default, detach: the GET shape is exactly the documented one", async ({
    app,
  }) => {
    const org = await app.linkedOrg();
    expect((await list(app, org.orgKey)).text).toBe('{"payment_methods":[]}');

    const visa = id("pm");
    expect(
      (await attach(app, org.customerId, visa, { brand: "visa", last4: "4242", expMonth: 12, expYear: 2028 })).json
        .outcome,
    ).toBe("payment_method_saved");
    let res = await list(app, org.orgKey);
    const visaId = res.json.payment_methods[0].id as string;
    expect(visaId).toMatch(OUR_ID);
    expect(res.text).toBe(
      `{"payment_methods":[{"id":"${visaId}","brand":"visa","last4":"4242","exp":"12/28","default":false}]}`,
    );

    expect((await setDefault(app, org.customerId, visa)).json.outcome).toBe("default_changed");
    res = await list(app, org.orgKey);
    expect(res.text).toBe(
      `{"payment_methods":[{"id":"${visaId}","brand":"visa","last4":"4242","exp":"12/28","default":true}]}`,
    );

    const mc = id("pm");
    await attach(app, org.customerId, mc, { brand: "mastercard", last4: "4444", expMonth: 3, expYear: 2031 });
    res = await list(app, org.orgKey);
    const mcId = res.json.payment_methods[1].id as string;
    expect(mcId).toMatch(OUR_ID);
    expect(res.json).toEqual({
      payment_methods: [
        { id: visaId, brand: "visa", last4: "4242", exp: "12/28", default: true },
        { id: mcId, brand: "mastercard", last4: "4444", exp: "03/31", default: false },
      ],
    });

    app.clock.advance(1000);
    await setDefault(app, org.customerId, mc);
    expect((await list(app, org.orgKey)).json).toEqual({
      payment_methods: [
        { id: mcId, brand: "mastercard", last4: "4444", exp: "03/31", default: true },
        { id: visaId, brand: "visa", last4: "4242", exp: "12/28", default: false },
      ],
    });

    // Detaching the default: the processor sends the card without its customer, naming it in previous_attributes.
    app.clock.advance(1000);
    const detached = await app.deliver(
      app.event(
        "payment_method.detached",
        cardPaymentMethod({ id: mc, customer: null, brand: "mastercard", last4: "4444", expMonth: 3, expYear: 2031 }),
        {
          previous_attributes: { customer: org.customerId },
        },
      ),
    );
    expect(detached.json.outcome).toBe("payment_method_detached");
    expect((await list(app, org.orgKey)).text).toBe(
      `{"payment_methods":[{"id":"${visaId}","brand":"visa","last4":"4242","exp":"12/28","default":false}]}`,
    );
    await setDefault(app, org.customerId, null);
    expect((await list(app, org.orgKey)).json.payment_methods).toHaveLength(1);
  });

  it("payment_method.updated changes the expiry; an older event arriving late changes nothing", async ({ app }) => {
    const org = await app.linkedOrg();
    const pm = id("pm");
    const start = app.nowSeconds();
    await attach(app, org.customerId, pm, { expMonth: 1, expYear: 2027 }, start);
    const newer = await app.deliver(
      app.event(
        "payment_method.updated",
        cardPaymentMethod({ id: pm, customer: org.customerId, expMonth: 9, expYear: 2030 }),
        { created: start + 20 },
      ),
    );
    expect(newer.json.outcome).toBe("payment_method_saved");
    const older = await app.deliver(
      app.event(
        "payment_method.updated",
        cardPaymentMethod({ id: pm, customer: org.customerId, expMonth: 5, expYear: 2029 }),
        { created: start + 10 },
      ),
    );
    expect(older.json.outcome).toBe("stale");
    expect((await list(app, org.orgKey)).json.payment_methods[0]).toMatchObject({ exp: "09/30", last4: "4242" });
  });

  it("a default announced before its card arrives still applies, and an older customer event does not undo a newer one", async ({
    app,
  }) => {
    const org = await app.linkedOrg();
    const a = id("pm");
    const b = id("pm");
    const start = app.nowSeconds();
    await setDefault(app, org.customerId, b, start + 5);
    await attach(app, org.customerId, a, { last4: "1111" }, start + 1);
    await attach(app, org.customerId, b, { last4: "2222" }, start + 2);
    expect((await setDefault(app, org.customerId, a, start + 3)).json.outcome).toBe("stale");
    const res = await list(app, org.orgKey);
    expect(res.json.payment_methods.map((m: { last4: string; default: boolean }) => [m.last4, m.default])).toEqual([
      ["2222", true],
      ["1111", false],
    ]);
  });

  it("a detach that overtakes its attach wins: the card never shows up", async ({ app }) => {
    const org = await app.linkedOrg();
    const pm = id("pm");
    const start = app.nowSeconds();
    const detach = await app.deliver(
      app.event("payment_method.detached", cardPaymentMethod({ id: pm, customer: null }), {
        created: start + 5,
        previous_attributes: { customer: org.customerId },
      }),
    );
    expect(detach.json.outcome).toBe("payment_method_detached");
    expect((await attach(app, org.customerId, pm, {}, start)).json.outcome).toBe("stale");
    expect((await list(app, org.orgKey)).json.payment_methods).toEqual([]);
  });

  it("events for an unlinked customer, and non-card methods, change nothing", async ({ app, db }) => {
    const org = await app.linkedOrg();
    const stranger = id("cus");
    expect((await attach(app, stranger, id("pm"))).json.outcome).toBe("unknown_customer");
    expect((await setDefault(app, stranger, id("pm"))).json.outcome).toBe("unknown_customer");
    const bank = await app.deliver(
      app.event(
        "payment_method.attached",
        cardPaymentMethod({ id: id("pm"), customer: org.customerId, type: "us_bank_account" }),
      ),
    );
    expect(bank.json.outcome).toBe("not_a_card");
    expect((await list(app, org.orgKey)).json.payment_methods).toEqual([]);
    const rows = await db.sql`select count(*)::int as n from payment_methods where org_id = ${org.id}`;
    expect(rows[0]!.n).toBe(0);
  });

  it("one org never sees another's cards", async ({ app }) => {
    const a = await app.linkedOrg("A");
    const b = await app.linkedOrg("B");
    await attach(app, b.customerId, id("pm"), { last4: "9999" });
    expect((await list(app, a.orgKey)).json).toEqual({ payment_methods: [] });
    expect((await list(app, b.orgKey)).json.payment_methods).toHaveLength(1);
  });

  it("concurrent attaches and default changes leave at most one default: the newest", async ({ app }) => {
    const org = await app.linkedOrg();
    const start = app.nowSeconds();
    const pms = Array.from({ length: 6 }, () => id("pm"));
    const deliveries = pms.flatMap((pm, i) => [
      attach(app, org.customerId, pm, { last4: String(1000 + i) }, start),
      setDefault(app, org.customerId, pm, start + 1 + i),
    ]);
    const results = await Promise.all(deliveries);
    expect(results.map((r) => r.status)).toEqual(Array(deliveries.length).fill(200));
    const methods = (await list(app, org.orgKey)).json.payment_methods as { last4: string; default: boolean }[];
    expect(methods).toHaveLength(6);
    expect(methods.filter((m) => m.default)).toEqual([expect.objectContaining({ last4: "1005" })]);
  });

  it("the database itself refuses a second default in one org (partial unique index)", async ({ app, db }) => {
    const org = await app.linkedOrg();
    await attach(app, org.customerId, id("pm"));
    await attach(app, org.customerId, id("pm"));
    await expect(db.sql`update payment_methods set is_default = true where org_id = ${org.id}`).rejects.toThrow(
      /payment_methods_one_default/,
    );
  });

  it("stores only brand, last4, expiry, the default flag and the processor's id: no billing details", async ({
    db,
  }) => {
    const columns = await db.sql<{ column_name: string }[]>`
      select column_name from information_schema.columns where table_schema = 'billing' and table_name = 'payment_methods' order by ordinal_position`;
    expect(columns.map((c) => c.column_name)).toEqual([
      "id",
      "org_id",
      "processor_id",
      "brand",
      "last4",
      "exp_month",
      "exp_year",
      "is_default",
      "processor_event_at",
      "detached_at",
      "created_at",
      "updated_at",
    ]);
  });

  it("no response ever shows a card number, a processor id or a secret", async ({ app, db }) => {
    const orgs = await db.sql<{ org_id: string }[]>`select org_id from processor_customers`;
    for (const { org_id } of orgs) {
      const key = await app.call("POST", `/v1/admin/orgs/${org_id}/keys`, {
        key: TEST_ADMIN_KEY,
        body: { scope: "org" },
      });
      await list(app, key.json.key);
    }
    expect(findLeaks(app.bodies, [...used, TEST_WEBHOOK_SECRET])).toEqual([]);
  });
});
