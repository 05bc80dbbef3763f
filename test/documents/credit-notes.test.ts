import fc from "fast-check";
import { describe, expect } from "vitest";
import { issueCreditNote } from "../../src/billing/credit-notes/issue-credit-note.js";
import { BillingError } from "../../src/errors.js";
import { manualClock, TEST_ADMIN_KEY } from "../support/app.js";
import { contextAt } from "../support/context.js";
import { appTest as it } from "../support/fixtures.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import { creditNote, issueInvoice } from "./invoices.js";

/**
 * Billing details on invoices issued after they change, and credit notes
 * (src/billing/credit-notes): the invoice stays untouched, the ledger balanced, the notes of an
 * invoice never beyond its subtotal (even racing), numbers without gaps, bad input a 4xx.
 */
describe("billing details and credit notes", () => {
  const clock = manualClock(new Date("2026-10-05T10:00:00Z"));
  it.scoped({ dbOptions: { max: 12 }, appOptions: { clock } });

  const details = {
    legal_name: "Example GmbH",
    address_lines: ["Musterstraße 1", "3. OG"],
    city: "Berlin",
    postal_code: "10115",
    country: "de",
    tax_id: "DE123456789",
    invoice_email: "ap@example.com",
  };

  it("details are printed only on invoices issued after the change; an earlier invoice keeps what it had", async ({
    app,
  }) => {
    const org = await app.createOrg("Detailed");
    expect((await app.call("GET", "/v1/billing/details", { key: org.orgKey })).status).toBe(404);
    await app.grant(org.id, "100");
    const before = await issueInvoice(app, clock, org, { charge: "5" });
    expect(before.billing_details).toBeNull();

    const put = await app.call("PUT", "/v1/billing/details", { key: org.orgKey, body: details });
    expect(put.status, put.text).toBe(200);
    expect(put.json).toMatchObject({ ...details, country: "DE", updated_at: expect.any(String) });
    expect((await app.call("GET", "/v1/billing/details", { key: org.orgKey })).json).toEqual(put.json);

    const after = await issueInvoice(app, clock, org, { charge: "5" });
    const { updated_at: _, ...snapshot } = put.json;
    expect(after.billing_details).toEqual(snapshot);
    // The earlier invoice is as it was, whatever the org sets now.
    expect((await app.call("GET", `/v1/billing/invoices/${before.id}`, { key: org.orgKey })).json).toEqual(before);
    const changed = await app.call("PUT", "/v1/billing/details", {
      key: org.orgKey,
      body: { ...details, legal_name: "Renamed AG", country: "CH", postal_code: null, tax_id: null },
    });
    expect(changed.status).toBe(200);
    expect((await app.call("GET", `/v1/billing/invoices/${after.id}`, { key: org.orgKey })).json).toEqual(after);
  });

  it.for([
    ["a country that is not ISO 3166-1", { country: "XX" }, "country"],
    ["a reserved code", { country: "EU" }, "country"],
    ["a country name", { country: "Germany" }, "country"],
    ["a bad email", { invoice_email: "not-an-email" }, "invoice_email"],
    ["no address", { address_lines: [] }, "address_lines"],
    ["a blank legal name", { legal_name: "   " }, "legal_name"],
    ["an unknown field", { vat: "x" }, undefined],
  ] as const)("PUT details with %s is 400 in the envelope", async ([, change, param], { app }) => {
    const org = await app.createOrg("Bad details");
    const res = await app.call("PUT", "/v1/billing/details", { key: org.orgKey, body: { ...details, ...change } });
    expect(res.status, res.text).toBe(400);
    expect(res.json.error).toMatchObject({ code: "invalid_request", request_id: expect.any(String) });
    if (param) expect(res.json.error.param).toBe(param);
  });

  it("a credit note leaves the invoice untouched, grants the amount back and keeps the ledger balanced", async ({
    app,
    db,
  }) => {
    const org = await app.createOrg("Credited");
    await app.grant(org.id, "100");
    await app.call("PUT", "/v1/billing/details", { key: org.orgKey, body: details });
    const invoice = await issueInvoice(app, clock, org, { charge: "30" });
    expect(invoice.status).toBe("paid");
    const rowBefore = await db.sql`select * from invoices where id = ${invoice.id}`;
    const linesBefore = await db.sql`select * from invoice_lines where invoice_id = ${invoice.id} order by id`;
    const balanceBefore = BigInt(
      (await app.call("GET", "/v1/billing/balance", { key: org.orgKey })).json.balance_nano_usd,
    );

    const res = await creditNote(app, invoice.id, {
      lines: [
        { description: "Support plan overcharge", amount: "10.00" },
        { description: "Goodwill", amount: "2.5" },
      ],
      reason: "Billed twice for support",
    });
    expect(res.status, res.text).toBe(201);
    expect(res.json).toMatchObject({
      id: expect.stringMatching(/^cn_/),
      number: expect.stringMatching(/^CN-\d{6}$/),
      invoice_id: invoice.id,
      invoice_number: invoice.number,
      reason: "Billed twice for support",
      refund: "credits",
      total_usd: "12.5",
      total_nano_usd: "12500000000",
      lines: [
        { description: "Support plan overcharge", amount_usd: "10" },
        { description: "Goodwill", amount_usd: "2.5" },
      ],
      billing_details: expect.objectContaining({ legal_name: "Example GmbH", country: "DE" }),
      grant_id: expect.stringMatching(/^grant_/),
      card_refund: null,
    });
    // The invoice row and its lines, byte for byte as before.
    expect(await db.sql`select * from invoices where id = ${invoice.id}`).toEqual(rowBefore);
    expect(await db.sql`select * from invoice_lines where invoice_id = ${invoice.id} order by id`).toEqual(linesBefore);
    expect((await app.call("GET", `/v1/billing/invoices/${invoice.id}`, { key: org.orgKey })).json).toEqual(invoice);

    const balanceAfter = BigInt(
      (await app.call("GET", "/v1/billing/balance", { key: org.orgKey })).json.balance_nano_usd,
    );
    expect(balanceAfter - balanceBefore).toBe(12_500_000_000n);
    const [grant] = await db.sql<{ source: string; source_id: string; amount: bigint }[]>`
      select source, source_id, amount from credit_grants where id = ${res.json.grant_id}`;
    expect(grant).toEqual({ source: "refund_credit", source_id: res.json.id, amount: 12_500_000_000n });
    const [posted] =
      await db.sql`select kind from ledger_transactions t join credit_grants g on g.transaction_id = t.id where g.id = ${res.json.grant_id}`;
    expect(posted?.kind).toBe("credit_note");
    await expectLedgerConsistent(db.sql);

    // Listed and fetched by the org; the event is in the outbox.
    const list = await app.call("GET", "/v1/billing/credit-notes", { key: org.orgKey });
    expect(list.json.data).toEqual([res.json]);
    expect((await app.call("GET", `/v1/billing/credit-notes/${res.json.id}`, { key: org.orgKey })).json).toEqual(
      res.json,
    );
    const other = await app.createOrg("Other");
    expect((await app.call("GET", `/v1/billing/credit-notes/${res.json.id}`, { key: other.orgKey })).status).toBe(404);
    expect((await app.call("GET", "/v1/billing/credit-notes", { key: other.orgKey })).json.data).toEqual([]);
    // A cursor that is none of the org's notes (made up, or another org's note) is refused, not an empty page.
    for (const [key, cursor] of [
      [org.orgKey, "zzz"],
      [other.orgKey, res.json.id],
    ]) {
      const page = await app.call("GET", `/v1/billing/credit-notes?limit=1&cursor=${cursor}`, { key });
      expect({ status: page.status, param: page.json.error?.param }).toEqual({ status: 400, param: "cursor" });
    }
    const events = await db.sql<{ type: string; data: Record<string, unknown> }[]>`
      select type, data from billing_events where org_id = ${org.id} and type = 'credit_note.issued'`;
    expect(events).toEqual([
      {
        type: "credit_note.issued",
        data: expect.objectContaining({ credit_note_id: res.json.id, number: res.json.number, total_usd: "12.5" }),
      },
    ]);
  });

  it("a retry with the same key returns the first note and credits nothing more; another request with it is 409", async ({
    app,
    db,
  }) => {
    const org = await app.createOrg("Retried");
    await app.grant(org.id, "50");
    const invoice = await issueInvoice(app, clock, org, { charge: "20" });
    const body = { lines: [{ description: "Fix", amount: "3" }], reason: "Typo in the plan price" };
    const replies = await Promise.all(Array.from({ length: 4 }, () => creditNote(app, invoice.id, body, "same-key")));
    expect(replies.map((r) => r.status).sort()).toEqual([200, 200, 200, 201]);
    expect(new Set(replies.map((r) => r.json.id)).size).toBe(1);
    expect(replies.filter((r) => r.headers.get("idempotent-replayed") === "true")).toHaveLength(3);
    const notes = await db.sql`select 1 from credit_notes where invoice_id = ${invoice.id}`;
    expect(notes).toHaveLength(1);
    const other = await creditNote(app, invoice.id, { ...body, reason: "Something else" }, "same-key");
    expect(other.status).toBe(409);
    expect(other.json.error.code).toBe("idempotency_key_reused");
    await expectLedgerConsistent(db.sql);
  });

  it("concurrent credit notes racing past the invoice total: never beyond it", async ({ app, db }) => {
    const org = await app.createOrg("Raced");
    await app.grant(org.id, "100");
    const invoice = await issueInvoice(app, clock, org, { charge: "10" });
    // Each asks 4 of the 10: two fit, the rest are refused.
    const replies = await Promise.all(
      Array.from({ length: 8 }, () =>
        creditNote(app, invoice.id, { lines: [{ description: "Part", amount: "4" }], reason: "Race" }),
      ),
    );
    expect(replies.map((r) => r.status).sort()).toEqual([201, 201, 409, 409, 409, 409, 409, 409]);
    for (const r of replies.filter((r) => r.status === 409)) expect(r.json.error.code).toBe("credit_exceeds_invoice");
    const [sum] = await db.sql<{ total: string }[]>`
      select coalesce(sum(total), 0)::text as total from credit_notes where invoice_id = ${invoice.id}`;
    expect(BigInt(sum?.total ?? "0")).toBe(8_000_000_000n);
    // What is left (2) still fits, exactly; a cent more does not.
    expect(
      (await creditNote(app, invoice.id, { lines: [{ description: "x", amount: "2.01" }], reason: "r" })).status,
    ).toBe(409);
    expect(
      (await creditNote(app, invoice.id, { lines: [{ description: "x", amount: "2" }], reason: "r" })).status,
    ).toBe(201);
    await expectLedgerConsistent(db.sql);
  });

  it("bad input is a 4xx in the envelope", async ({ app, db }) => {
    const org = await app.createOrg("Bad notes");
    await app.grant(org.id, "100");
    const invoice = await issueInvoice(app, clock, org, { charge: "10" });
    const line = (amount: unknown) => ({ lines: [{ description: "x", amount }], reason: "r" });
    const cases: [string, string, unknown, number, string][] = [
      ["unknown invoice", "inv_doesnotexist", line("1"), 404, "not_found"],
      ["zero", invoice.id, line("0"), 400, "invalid_request"],
      ["negative", invoice.id, line("-1"), 400, "invalid_request"],
      ["above any movement", invoice.id, line("1000000.01"), 400, "invalid_request"],
      ["more than the invoice", invoice.id, line("10.000000001"), 409, "credit_exceeds_invoice"],
      ["a float", invoice.id, line(1.5), 400, "invalid_request"],
      ["no lines", invoice.id, { lines: [], reason: "r" }, 400, "invalid_request"],
      ["no reason", invoice.id, { lines: [{ description: "x", amount: "1" }] }, 400, "invalid_request"],
      ["an unknown refund", invoice.id, { ...line("1"), refund: "cash" }, 400, "invalid_request"],
      ["card on a deployment without a processor", invoice.id, { ...line("1"), refund: "card" }, 503, "not_configured"],
    ];
    for (const [label, id, body, status, code] of cases) {
      const res = await creditNote(app, id, body as Record<string, unknown>);
      expect(res.status, `${label}: ${res.text}`).toBe(status);
      expect(res.json.error, label).toMatchObject({ code, request_id: expect.any(String) });
    }
    // A draft (as a close writes it, inside its transaction) cannot be credited.
    await db.sql`insert into invoices (id, org_id, period_start, period_end, status, created_at)
                 values ('inv_draft_doc', ${org.id}, '2030-01-01', '2030-02-01', 'draft', now())`;
    const draft = await creditNote(app, "inv_draft_doc", line("1"));
    expect(draft.status).toBe(409);
    expect(draft.json.error.code).toBe("conflict");
    // Without a key, or with an org key: not an operator.
    const noKey = await app.call("POST", `/v1/admin/invoices/${invoice.id}/credit-notes`, { body: line("1") });
    expect(noKey.status).toBe(401);
    const orgKey = await app.call("POST", `/v1/admin/invoices/${invoice.id}/credit-notes`, {
      key: org.orgKey,
      headers: { "idempotency-key": "k" },
      body: line("1"),
    });
    expect(orgKey.status).toBe(403);
    const noIdem = await app.call("POST", `/v1/admin/invoices/${invoice.id}/credit-notes`, {
      key: TEST_ADMIN_KEY,
      body: line("1"),
    });
    expect(noIdem.status).toBe(400);
    expect(await db.sql`select 1 from credit_notes where invoice_id = ${invoice.id}`).toHaveLength(0);
  });

  it("property: any sequence of credit notes keeps their sum within the invoice total, and numbers without gaps", async ({
    app,
    db,
  }) => {
    const org = await app.createOrg("Property");
    await app.grant(org.id, "1000");
    const invoices = [
      await issueInvoice(app, clock, org, { charge: "7" }),
      await issueInvoice(app, clock, org, { charge: "0.000000003" }),
    ];
    const ctx = contextAt(db.appSql, clock());
    const totals = new Map(invoices.map((i) => [i.id, BigInt(i.subtotal_nano_usd)]));
    let key = 0;
    let issued = 0;
    let refused = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(
          fc.record({
            invoice: fc.constantFrom(...invoices.map((i) => i.id)),
            amounts: fc.array(fc.bigInt({ min: 1n, max: 4_000_000_000n }), { minLength: 1, maxLength: 3 }),
          }),
          { minLength: 1, maxLength: 6 },
        ),
        async (steps) => {
          for (const step of steps) {
            const [row] = await db.sql<{ credited: string; subtotal: bigint }[]>`
              select coalesce((select sum(total) from credit_notes where invoice_id = ${step.invoice}), 0)::text as credited, subtotal
              from invoices where id = ${step.invoice}`;
            const left = (row?.subtotal ?? 0n) - BigInt(row?.credited ?? "0");
            const total = step.amounts.reduce((s, a) => s + a, 0n);
            try {
              await issueCreditNote(ctx, {
                invoiceId: step.invoice,
                lines: step.amounts.map((amount) => ({ description: "p", amount })),
                reason: "property",
                refund: "credits",
                idempotencyKey: `prop-${++key}`,
              });
              expect(total <= left, `issued ${total} with ${left} left`).toBe(true);
              issued++;
            } catch (err) {
              if (!(err instanceof BillingError) || err.code !== "credit_exceeds_invoice") throw err;
              expect(total > left).toBe(true);
              refused++;
            }
          }
          for (const [id, subtotal] of totals) {
            const [s] = await db.sql<{ total: string }[]>`
              select coalesce(sum(total), 0)::text as total from credit_notes where invoice_id = ${id}`;
            expect(BigInt(s?.total ?? "0")).toBeLessThanOrEqual(subtotal);
          }
          const numbers = await db.sql<{ n: string }[]>`
            select substring(number from 4) as n from credit_notes order by number`;
          expect(numbers.map((r) => Number(r.n))).toEqual(numbers.map((_, i) => i + 1));
        },
      ),
      { numRuns: 25 },
    );
    // Not vacuous: both outcomes happened.
    expect(issued).toBeGreaterThan(0);
    expect(refused).toBeGreaterThan(0);
    await expectLedgerConsistent(db.sql);
  });
});
