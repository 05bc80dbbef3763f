/**
 * Promo codes attacked from the outside (issue #17), over HTTP against the real app and database.
 *
 * Invariants:
 * - Never more redemptions than max_redemptions, whatever races (any spelling of the code).
 * - Once per organization per code.
 * - A code is redeemable strictly before its expires_at and never after its deactivation: a
 *   redemption racing the deactivation either happened before it or is refused.
 * - first_top_up_only: an org that has been credited a paid top-up is refused; a top-up racing the
 *   redemption is never a 500 and leaves the ledger balanced.
 * - Each redemption is one promo grant of the code's amount, and the code's count equals its rows.
 * - Bad input (look-alike Unicode, whitespace, wrong types) is a 4xx in the envelope.
 */
import { describe, expect } from "vitest";
import { createBillingContext } from "../../src/billing/context.js";
import { creditCardTopup } from "../../src/billing/payments/credit-card-topup.js";
import { manualClock, TEST_ADMIN_KEY } from "../support/app.js";
import { appTest as it } from "../support/fixtures.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import { CODES, makeCode, redeem } from "./support.js";

const clock = manualClock(new Date("2026-11-15T12:00:00Z"));
let n = 0;

describe("promo codes under attack", () => {
  it.scoped({ dbOptions: { max: 24 }, appOptions: { clock } });

  it("the expiry instant: redeemable a millisecond before, promo_code_expired at it", async ({ app }) => {
    clock.set(new Date("2026-11-15T12:00:00Z"));
    const code = await makeCode(app, { expires_at: "2026-11-30T23:59:59.999Z" });
    const a = await app.createOrg("Just in time");
    const b = await app.createOrg("Just late");
    clock.set(new Date("2026-11-30T23:59:59.998Z"));
    expect((await redeem(app, a.orgKey, code.code)).status).toBe(201);
    clock.set(new Date("2026-11-30T23:59:59.999Z"));
    const late = await redeem(app, b.orgKey, code.code);
    expect(late.status).toBe(422);
    expect(late.json.error.code).toBe("promo_code_expired");
  });

  it("redemptions racing the deactivation: each one before it, or refused; the count equals the rows and the grants", async ({
    app,
    db,
  }) => {
    clock.set(new Date("2026-11-15T12:00:00Z"));
    const code = await makeCode(app, { max_redemptions: 1000 });
    const orgs = [];
    for (let i = 0; i < 16; i++) orgs.push(await app.createOrg(`Racer ${i}`));
    const replies = await Promise.all([
      ...orgs.slice(0, 8).map((o) => redeem(app, o.orgKey, code.code.toLowerCase())),
      app.call("POST", `${CODES}/${code.id}/deactivate`, { key: TEST_ADMIN_KEY }),
      ...orgs.slice(8).map((o) => redeem(app, o.orgKey, ` ${code.code} `)),
    ]);
    for (const r of replies) expect(r.status, r.text).toBeLessThan(500);
    const deactivatedAt = new Date(replies[8]!.json.deactivated_at);
    const granted = replies.filter((r) => r.status === 201);
    for (const r of replies.filter((r) => r.status === 422)) expect(r.json.error.code).toBe("promo_code_inactive");
    const [row] = await db.sql<{ redemption_count: number; rows: number; grants: number; deactivated_at: Date }[]>`
      select c.redemption_count, c.deactivated_at,
        (select count(*)::int from promo_redemptions r where r.promo_code_id = c.id) as rows,
        (select count(*)::int from credit_grants g join promo_redemptions r on g.source = 'promo' and g.source_id = r.id
         where r.promo_code_id = c.id) as grants
      from promo_codes c where c.id = ${code.id}`;
    expect(row).toMatchObject({ redemption_count: granted.length, rows: granted.length, grants: granted.length });
    expect(row!.deactivated_at).toEqual(deactivatedAt);
    // After the deactivation, nobody.
    expect((await redeem(app, (await app.createOrg("Later")).orgKey, code.code)).json.error.code).toBe(
      "promo_code_inactive",
    );
    await expectLedgerConsistent(db.sql);
  });

  it("max_redemptions under many orgs each racing in several spellings at once: exactly max, once per org", async ({
    app,
    db,
  }) => {
    clock.set(new Date("2026-11-15T12:00:00Z"));
    const code = await makeCode(app, { max_redemptions: 4, code: `Mixed-${++n}` });
    const orgs = [];
    for (let i = 0; i < 8; i++) orgs.push(await app.createOrg(`Speller ${i}`));
    const spellings = [
      code.code,
      code.code.toLowerCase(),
      `\t${code.code}\n`,
      code.code.replace(/[A-Z]/g, (c) => c.toLowerCase()).replace(/^m/, "M"),
    ];
    const replies = await Promise.all(orgs.flatMap((o) => spellings.map((s) => redeem(app, o.orgKey, s))));
    for (const r of replies) expect([201, 409, 422]).toContain(r.status);
    expect(replies.filter((r) => r.status === 201)).toHaveLength(4);
    const perOrg = await db.sql<{ org_id: string; n: number }[]>`
      select org_id, count(*)::int as n from promo_redemptions where promo_code_id = ${code.id} group by org_id`;
    expect(perOrg).toHaveLength(4);
    for (const p of perOrg) expect(p.n).toBe(1);
    await expectLedgerConsistent(db.sql);
  });

  it("first_top_up_only with a card top-up racing the redemption: never a 500; redeemed only when the top-up was not yet credited", async ({
    app,
    db,
  }) => {
    clock.set(new Date("2026-11-15T12:00:00Z"));
    const code = await makeCode(app, { first_top_up_only: true, max_redemptions: 100 });
    const ctx = createBillingContext({ sql: db.appSql, clock });
    for (let i = 0; i < 8; i++) {
      const org = await app.createOrg(`First ${i}`);
      const [r] = await Promise.all([
        redeem(app, org.orgKey, code.code),
        db.appSql.begin((tx) =>
          creditCardTopup(
            { ...ctx, sql: tx },
            { orgId: org.id, paymentId: `pi_atk_${org.id}`, chargeId: null, currency: "usd", amountMinor: 500n },
          ),
        ),
      ]);
      expect([201, 422]).toContain(r!.status);
      if (r!.status === 422) expect(r!.json.error.code).toBe("promo_code_first_top_up_only");
      // Now that the top-up is credited, no second chance.
      expect((await redeem(app, org.orgKey, code.code)).status).toBe(r!.status === 201 ? 409 : 422);
    }
    await expectLedgerConsistent(db.sql);
  });

  it("look-alike Unicode, blank, wrong types and absurd lengths are 4xx in the envelope and redeem nothing", async ({
    app,
    db,
  }) => {
    clock.set(new Date("2026-11-15T12:00:00Z"));
    const code = await makeCode(app, { code: `LAUNCH-IT-${++n}` });
    const org = await app.createOrg("Homoglyphs");
    for (const bad of [
      code.code.replace("A", "\u0410"), // Cyrillic А
      code.code.replace("L", "\uff2c"), // fullwidth Ｌ
      code.code.toLowerCase().replace("i", "\u0131"),
      `${code.code}\u200b`,
      "",
      "   ",
      "x".repeat(100_000),
      42,
      null,
      [code.code],
      { code: code.code },
    ]) {
      const res = await redeem(app, org.orgKey, bad);
      expect([400, 422], `${JSON.stringify(bad)?.slice(0, 40)}: ${res.text}`).toContain(res.status);
      expect(res.json.error.request_id).toEqual(expect.any(String));
    }
    expect(await db.sql`select 1 from promo_redemptions where org_id = ${org.id}`).toHaveLength(0);
  });
});
