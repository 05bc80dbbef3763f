/**
 * Credit notes attacked from the outside (issue #17), over HTTP against the real app and database.
 *
 * Invariants:
 * - The notes of an invoice never credit more than it is worth: their totals never exceed its
 *   subtotal, even racing, and an invoice worth nothing (void) is never credited, before or after
 *   its notes.
 * - The invoice row never changes because of a note.
 * - Numbers CN-xxxxxx are unique and without gaps, whatever races or is refused.
 * - Idempotent per (organization, Idempotency-Key): a replay returns the first note and moves no
 *   money; the same key for another request, even racing on another invoice of the org, is a 409
 *   idempotency_key_reused, never a 500 and never a second note.
 * - The ledger stays balanced.
 */
import fc from "fast-check";
import { describe, expect } from "vitest";
import { modelSettings } from "../model/settings.js";
import { manualClock, TEST_ADMIN_KEY } from "../support/app.js";
import { appTest as it } from "../support/fixtures.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import { creditNote, issueInvoice } from "./invoices.js";

describe("credit notes under attack", () => {
  const clock = manualClock(new Date("2026-10-05T10:00:00Z"));
  it.scoped({ dbOptions: { max: 12 }, appOptions: { clock } });

  const line = (amount: string) => ({ lines: [{ description: "Correction", amount }], reason: "Attack" });
  const expectGaplessNumbers = async (sql: import("../../src/db/client.js").Sql) => {
    const numbers = await sql<{ n: string }[]>`select substring(number from 4) as n from credit_notes order by number`;
    expect(numbers.map((r) => Number(r.n))).toEqual(numbers.map((_, i) => i + 1));
  };

  it("one Idempotency-Key racing on several invoices of one org: one note, the others 409 idempotency_key_reused", async ({
    app,
    db,
  }) => {
    clock.set(new Date("2026-10-05T10:00:00Z"));
    const org = await app.createOrg("Key racer");
    await app.grant(org.id, "1000");
    const invoices: Awaited<ReturnType<typeof issueInvoice>>[] = [];
    for (let i = 0; i < 5; i++) invoices.push(await issueInvoice(app, clock, org, { charge: "10" }));
    const before = await db.sql`select * from invoices where org_id = ${org.id} order by id`;
    for (let round = 0; round < 4; round++) {
      const replies = await Promise.all(invoices.map((inv) => creditNote(app, inv.id, line("1"), `shared-${round}`)));
      for (const r of replies) expect(r.status, r.text).not.toBeGreaterThanOrEqual(500);
      expect(replies.filter((r) => r.status === 201)).toHaveLength(1);
      for (const r of replies.filter((r) => r.status !== 201)) {
        expect(r.status, r.text).toBe(409);
        expect(r.json.error.code).toBe("idempotency_key_reused");
      }
      const [n] = await db.sql<{ n: number }[]>`
        select count(*)::int as n from credit_notes where org_id = ${org.id} and idempotency_key = ${`shared-${round}`}`;
      expect(n!.n).toBe(1);
    }
    // Another org may use the same key for its own note.
    const other = await app.createOrg("Same key, other org");
    await app.grant(other.id, "100");
    const theirs = await issueInvoice(app, clock, other, { charge: "10" });
    expect((await creditNote(app, theirs.id, line("1"), "shared-0")).status).toBe(201);
    expect(await db.sql`select * from invoices where org_id = ${org.id} order by id`).toEqual(before);
    await expectGaplessNumbers(db.sql);
    await expectLedgerConsistent(db.sql);
  });

  it("a void invoice is never credited, and an invoice with credit notes cannot be voided (even racing): nothing is forgiven twice", async ({
    app,
    db,
  }) => {
    clock.set(new Date("2027-01-05T10:00:00Z")); // each test's invoices inside one month: one invoice per close
    const org = await app.createOrg("Void seeker");
    // No credits: the charge stays due, the invoice open.
    const credited = await issueInvoice(app, clock, org, { charge: "10" });
    expect(credited.status).toBe("open");
    const note = await creditNote(app, credited.id, line("10"));
    expect(note.status, note.text).toBe(201);
    const voided = await app.call("POST", `/v1/admin/invoices/${credited.id}/void`, { key: TEST_ADMIN_KEY });
    expect(voided.status, voided.text).toBe(409);
    expect(voided.json.error.code).toBe("conflict");

    // Racing: a note and a void of one open invoice; at most one of them happens.
    for (let round = 0; round < 6; round++) {
      const invoice = await issueInvoice(app, clock, org, { charge: "10" });
      const [n, v] = await Promise.all([
        creditNote(app, invoice.id, line("10")),
        app.call("POST", `/v1/admin/invoices/${invoice.id}/void`, { key: TEST_ADMIN_KEY }),
      ]);
      expect(n.status, n.text).toBeLessThan(500);
      expect(v.status, v.text).toBeLessThan(500);
      expect([n.status, v.status].filter((s) => s === 201 || s === 200)).toHaveLength(1);
    }
    const [both] = await db.sql<{ n: number }[]>`
      select count(*)::int as n from invoices i where i.org_id = ${org.id} and i.status = 'void'
        and exists (select 1 from credit_notes c where c.invoice_id = i.id)`;
    expect(both!.n).toBe(0);
    await expectGaplessNumbers(db.sql);
    await expectLedgerConsistent(db.sql);
  });

  it("many notes racing over several invoices at once: each invoice within its subtotal, numbers unique and gapless", async ({
    app,
    db,
  }) => {
    clock.set(new Date("2027-03-05T10:00:00Z"));
    const org = await app.createOrg("Wide race");
    await app.grant(org.id, "1000");
    const invoices: Awaited<ReturnType<typeof issueInvoice>>[] = [];
    for (let i = 0; i < 3; i++) invoices.push(await issueInvoice(app, clock, org, { charge: "1" }));
    const replies = await Promise.all(
      Array.from({ length: 30 }, (_, i) => creditNote(app, invoices[i % 3]!.id, line("0.3"))),
    );
    for (const r of replies) expect([201, 409]).toContain(r.status);
    // 1 / 0.3: three fit per invoice.
    expect(replies.filter((r) => r.status === 201)).toHaveLength(9);
    const sums = await db.sql<{ total: string; subtotal: string }[]>`
      select coalesce(sum(c.total), 0)::text as total, i.subtotal::text as subtotal from invoices i
      left join credit_notes c on c.invoice_id = i.id where i.org_id = ${org.id} group by i.id`;
    for (const s of sums) expect(BigInt(s.total)).toBeLessThanOrEqual(BigInt(s.subtotal));
    await expectGaplessNumbers(db.sql);
    await expectLedgerConsistent(db.sql);
  });

  it("property: generated notes, replays, key reuses, racing bursts and voids over HTTP keep every invariant", async ({
    app,
    db,
  }) => {
    clock.set(new Date("2027-05-03T10:00:00Z"));
    const { runs, seed } = modelSettings(12);
    const org = await app.createOrg("Property attacker");
    await app.grant(org.id, "1000");
    // Open invoices (no credits to pay them) and paid ones.
    const poor = await app.createOrg("Property poor");
    // Invoices 0 and 1 are the first org's, 2 and 3 the second's.
    const invoices = [
      await issueInvoice(app, clock, org, { charge: "3" }),
      await issueInvoice(app, clock, org, { charge: "0.000000005" }),
      await issueInvoice(app, clock, poor, { charge: "2" }),
      await issueInvoice(app, clock, poor, { charge: "2" }),
    ];
    const rowsBefore = new Map(
      (await db.sql<{ id: string }[]>`select * from invoices where id in ${db.sql(invoices.map((i) => i.id))}`).map(
        (r) => [r.id, r],
      ),
    );
    type Sent = { key: string; invoice: string; body: Record<string, unknown>; id: string };
    const sent: Sent[] = [];
    let k = 0;
    const amount = fc.bigInt({ min: 1n, max: 1_500_000_000n }).map((nano) => {
      const whole = nano / 1_000_000_000n;
      return `${whole}.${(nano % 1_000_000_000n).toString().padStart(9, "0")}`;
    });
    const command = fc.oneof(
      fc.record({
        t: fc.constant("issue" as const),
        inv: fc.nat(3),
        amounts: fc.array(amount, { minLength: 1, maxLength: 3 }),
      }),
      fc.record({ t: fc.constant("replay" as const), pick: fc.nat() }),
      fc.record({ t: fc.constant("reuse" as const), pick: fc.nat(), inv: fc.nat(3) }),
      fc.record({
        t: fc.constant("burst" as const),
        inv: fc.array(fc.nat(3), { minLength: 2, maxLength: 5 }),
        a: amount,
      }),
      fc.record({ t: fc.constant("void" as const), inv: fc.nat(3) }),
    );
    const issue = async (invoice: string, body: Record<string, unknown>, key = `prop-${seed}-${++k}`) => {
      const res = await creditNote(app, invoice, body, key);
      expect(res.status, res.text).toBeLessThan(500);
      if (res.status === 201) sent.push({ key, invoice, body, id: res.json.id });
      else if (res.status !== 200)
        expect(res.json.error.code).toMatch(/^(credit_exceeds_invoice|conflict|idempotency_key_reused)$/);
      return res;
    };
    await fc.assert(
      fc.asyncProperty(fc.array(command, { minLength: 1, maxLength: 8 }), async (cmds) => {
        for (const c of cmds) {
          if (c.t === "issue") {
            await issue(invoices[c.inv]!.id, {
              lines: c.amounts.map((a) => ({ description: "p", amount: a })),
              reason: "property",
            });
          } else if (c.t === "replay" && sent.length > 0) {
            const s = sent[c.pick % sent.length]!;
            const again = await creditNote(app, s.invoice, s.body, s.key);
            expect(again.status, again.text).toBe(200);
            expect(again.json.id).toBe(s.id);
          } else if (c.t === "reuse" && sent.length > 0) {
            const s = sent[c.pick % sent.length]!;
            // The key on either invoice of the same organization, with another reason.
            const first = invoices.findIndex((i) => i.id === s.invoice) < 2 ? 0 : 2;
            const target = invoices[first + (c.inv % 2)]!.id;
            const other = await creditNote(app, target, { ...s.body, reason: `another ${s.body.reason}` }, s.key);
            expect(other.status, other.text).toBe(409);
            expect(other.json.error.code).toBe("idempotency_key_reused");
          } else if (c.t === "burst") {
            const key = `burst-${seed}-${++k}`;
            const body = { lines: [{ description: "b", amount: c.a }], reason: "burst" };
            const replies = await Promise.all(c.inv.map((i) => creditNote(app, invoices[i]!.id, body, key)));
            for (const r of replies) expect(r.status, r.text).toBeLessThan(500);
            const made = replies.filter((r) => r.status === 201);
            // The key is each organization's: at most one note per organization the burst touched.
            expect(made.length).toBeLessThanOrEqual(new Set(c.inv.map((i) => (i < 2 ? "org" : "poor"))).size);
            for (const m of made) sent.push({ key, invoice: m.json.invoice_id, body, id: m.json.id });
          } else if (c.t === "void") {
            const res = await app.call("POST", `/v1/admin/invoices/${invoices[c.inv]!.id}/void`, {
              key: TEST_ADMIN_KEY,
            });
            expect([200, 409]).toContain(res.status);
          }
        }
        const per = await db.sql<{ id: string; status: string; subtotal: bigint; credited: string; granted: string }[]>`
          select i.id, i.status, i.subtotal,
            coalesce((select sum(c.total) from credit_notes c where c.invoice_id = i.id), 0)::text as credited,
            coalesce((select sum(g.amount) from credit_notes c join credit_grants g on g.source = 'refund_credit' and g.source_id = c.id
                      where c.invoice_id = i.id), 0)::text as granted
          from invoices i where i.id in ${db.sql(invoices.map((i) => i.id))}`;
        for (const p of per) {
          expect(BigInt(p.credited)).toBeLessThanOrEqual(p.subtotal);
          expect(p.granted).toBe(p.credited); // refund credits: granted exactly once per note
          if (p.status === "void") expect(p.credited).toBe("0");
        }
        // The invoice rows never change but for an open invoice's status (void).
        for (const r of await db.sql<
          { id: string }[]
        >`select * from invoices where id in ${db.sql(invoices.map((i) => i.id))}`) {
          const { status: _s, voided_at: _v, ...now } = r as Record<string, unknown>;
          const { status: _s0, voided_at: _v0, ...then } = rowsBefore.get(r.id) as Record<string, unknown>;
          expect(now).toEqual(then);
        }
        await expectGaplessNumbers(db.sql);
      }),
      { numRuns: runs, seed },
    );
    await expectLedgerConsistent(db.sql);
  });
});
