import { describe, expect } from "vitest";
import { createBillingContext } from "../../src/billing/context.js";
import { creditCardTopup } from "../../src/billing/payments/credit-card-topup.js";
import { manualClock, TEST_ADMIN_KEY } from "../support/app.js";
import { appTest as it } from "../support/fixtures.js";
import { CODES, makeCode, REDEEM, redeem } from "./support.js";

/**
 * POST /v1/admin/promo-codes, GET /v1/admin/promo-codes, …/deactivate and
 * POST /v1/billing/promo-codes/redeem: once per org per code, never beyond max_redemptions
 * however the redemptions race, the grant in the redemption's transaction, each refusal a 4xx.
 */
const clock = manualClock(new Date("2026-11-15T12:00:00Z"));

describe("promo codes", () => {
  it.scoped({ dbOptions: { max: 24 }, appOptions: { clock } });

  it("an org redeems a code in any case and gets its credits as a promo grant, promo_credit in its ledger", async ({
    app,
    db,
  }) => {
    clock.set(new Date("2026-11-15T12:00:00Z"));
    const org = await app.createOrg();
    const code = await makeCode(app, { code: " Launch-25 ", amount: "25.5", grant_expires_in_days: 30 });
    expect(code.code).toBe("LAUNCH-25");
    const res = await redeem(app, org.orgKey, "launch-25");
    expect(res.status, res.text).toBe(201);
    expect(res.json).toMatchObject({
      code: "LAUNCH-25",
      amount: 25.5,
      amount_usd: "25.5",
      amount_nano_usd: "25500000000",
      grant_expires_at: "2026-12-15T12:00:00.000Z",
    });
    expect(res.json.id).toMatch(/^prr_/);
    const balance = await app.call("GET", "/v1/billing/balance", { key: org.orgKey });
    expect(balance.json.credits).toBe(25.5);
    // The grant names the redemption; the ledger movement has the promo kind.
    const grants = await app.call("GET", "/v1/billing/grants", { key: org.orgKey });
    expect(grants.json.data).toHaveLength(1);
    expect(grants.json.data[0]).toMatchObject({
      id: res.json.grant_id,
      source: "promo",
      source_id: res.json.id,
      reason: "promo code LAUNCH-25",
      remaining_nano_usd: "25500000000",
      spend_order: 1,
    });
    const txns = await app.call("GET", "/v1/billing/transactions", { key: org.orgKey });
    expect(txns.json.data[0]).toMatchObject({
      id: res.json.transaction_id,
      kind: "promo_credit",
      amount_nano_usd: "25500000000",
      description: "promo code LAUNCH-25",
    });
    // The event the notification work hears.
    const [event] = await db.sql`select data from billing_events where org_id = ${org.id} and type = 'credit.granted'`;
    expect(event?.data).toMatchObject({ source: "promo", source_id: res.json.id, amount_nano_usd: "25500000000" });
    const listed = await app.call("GET", `${CODES}?limit=100`, { key: TEST_ADMIN_KEY });
    expect(listed.json.data.find((c: { id: string }) => c.id === code.id)).toMatchObject({ redemption_count: 1 });
  });

  it("20 orgs racing for a code of 5 redemptions: exactly 5 get it, the rest 422 promo_code_exhausted", async ({
    app,
    db,
  }) => {
    const code = await makeCode(app, { max_redemptions: 5, amount: "1.25" });
    const orgs = await Promise.all(Array.from({ length: 20 }, (_, i) => app.createOrg(`Racer ${i}`)));
    const replies = await Promise.all(orgs.map((o) => redeem(app, o.orgKey, code.code.toLowerCase())));
    const won = replies.filter((r) => r.status === 201);
    expect(won).toHaveLength(5);
    for (const r of replies.filter((r) => r.status !== 201)) {
      expect(r.status, r.text).toBe(422);
      expect(r.json.error.code).toBe("promo_code_exhausted");
    }
    const [row] = await db.sql<{ count: number; redemptions: number; granted: string; promo: string }[]>`
      select c.redemption_count as count,
             (select count(*)::int from promo_redemptions r where r.promo_code_id = c.id) as redemptions,
             (select coalesce(sum(g.amount), 0)::text from credit_grants g join promo_redemptions r on r.id = g.source_id
               where r.promo_code_id = c.id and g.source = 'promo') as granted,
             (select coalesce(sum(e.amount), 0)::text from ledger_entries e join ledger_transactions t on t.id = e.transaction_id
               join credit_grants g on g.transaction_id = t.id join promo_redemptions r on r.id = g.source_id
               where r.promo_code_id = c.id and t.kind = 'promo_credit' and e.account_id like 'org:%') as promo
      from promo_codes c where c.id = ${code.id}`;
    expect(row).toEqual({ count: 5, redemptions: 5, granted: "6250000000", promo: "6250000000" });
  });

  it("one org racing itself: one redemption, the others 409 promo_code_already_redeemed", async ({ app, db }) => {
    const code = await makeCode(app, { max_redemptions: 100 });
    const org = await app.createOrg();
    const replies = await Promise.all(Array.from({ length: 12 }, () => redeem(app, org.orgKey, code.code)));
    expect(replies.filter((r) => r.status === 201)).toHaveLength(1);
    for (const r of replies.filter((r) => r.status !== 201)) {
      expect(r.status, r.text).toBe(409);
      expect(r.json.error).toMatchObject({ code: "promo_code_already_redeemed", param: "code" });
    }
    const [row] = await db.sql<{ n: number; grants: number; count: number }[]>`
      select (select count(*)::int from promo_redemptions where org_id = ${org.id}) as n,
             (select count(*)::int from credit_grants where org_id = ${org.id}) as grants,
             (select redemption_count from promo_codes where id = ${code.id}) as count`;
    expect(row).toEqual({ n: 1, grants: 1, count: 1 });
    // Later, too, and in another spelling.
    const again = await redeem(app, org.orgKey, code.code.toLowerCase());
    expect(again.status).toBe(409);
  });

  it("with an Idempotency-Key: a retry racing or after the first is answered with its redemption, even once the code is over; the key with another code is 409", async ({
    app,
    db,
  }) => {
    clock.set(new Date("2026-11-15T12:00:00Z"));
    const code = await makeCode(app, { max_redemptions: 1, expires_at: "2026-11-16T00:00:00Z" });
    const other = await makeCode(app);
    const org = await app.createOrg();
    const send = (c: string, key: string) =>
      app.call("POST", REDEEM, { key: org.orgKey, body: { code: c }, headers: { "idempotency-key": key } });
    // The first attempt and its retries racing it: one redemption, every answer is it.
    const replies = await Promise.all(Array.from({ length: 8 }, () => send(code.code, "redeem-1")));
    const first = replies.find((r) => r.status === 201);
    expect(first?.json.id).toMatch(/^prr_/);
    for (const r of replies) {
      expect([200, 201], r.text).toContain(r.status);
      expect(r.json).toEqual(first?.json);
      expect(r.headers.get("idempotent-replayed")).toBe(r.status === 200 ? "true" : null);
    }
    // A retry after the code ran out (max 1) and expired and was deactivated still learns of its success.
    await app.call("POST", `${CODES}/${code.id}/deactivate`, { key: TEST_ADMIN_KEY });
    clock.set(new Date("2026-11-20T00:00:00Z"));
    const later = await send(code.code.toLowerCase(), "redeem-1");
    expect(later.status, later.text).toBe(200);
    expect(later.json).toEqual(first?.json);
    // The key with another code, at once or later: refused, nothing redeemed.
    const reused = await Promise.all([send(other.code, "redeem-1"), send(other.code, "redeem-1")]);
    for (const r of reused) {
      expect(r.status, r.text).toBe(409);
      expect(r.json.error).toMatchObject({ code: "idempotency_key_reused", param: "code" });
    }
    // Another key is another request, refused as the code is now (deactivated comes first).
    const otherKey = await send(code.code, "redeem-2");
    expect(otherKey.json.error?.code).toBe("promo_code_inactive");
    const [row] = await db.sql<{ n: number; grants: number; credited: string }[]>`
      select (select count(*)::int from promo_redemptions where org_id = ${org.id}) as n,
             (select count(*)::int from credit_grants where org_id = ${org.id}) as grants,
             (select balance::text from ledger_accounts where org_id = ${org.id} and kind = 'org_credits') as credited`;
    expect(row).toEqual({ n: 1, grants: 1, credited: "5000000000" });
  });

  it("two codes racing under one key: one is redeemed, the other 409 idempotency_key_reused", async ({ app, db }) => {
    clock.set(new Date("2026-11-15T12:00:00Z"));
    const codes = await Promise.all([makeCode(app), makeCode(app), makeCode(app)]);
    const org = await app.createOrg();
    const replies = await Promise.all(
      codes.map((c) =>
        app.call("POST", REDEEM, { key: org.orgKey, body: { code: c.code }, headers: { "idempotency-key": "one" } }),
      ),
    );
    expect(replies.map((r) => r.status).sort()).toEqual([201, 409, 409]);
    for (const r of replies.filter((r) => r.status === 409))
      expect(r.json.error.code, r.text).toBe("idempotency_key_reused");
    const [row] = await db.sql<
      { n: number }[]
    >`select count(*)::int as n from promo_redemptions where org_id = ${org.id}`;
    expect(row?.n).toBe(1);
  });

  it("each refusal is a 4xx in the envelope, and moves nothing", async ({ app, db }) => {
    clock.set(new Date("2026-11-15T12:00:00Z"));
    const org = await app.createOrg();
    const expect4xx = async (code: string, status: number, errorCode: string) => {
      const res = await redeem(app, org.orgKey, code);
      expect(res.status, `${code}: ${res.text}`).toBe(status);
      expect(res.json.error).toMatchObject({ code: errorCode, request_id: expect.any(String) });
    };
    await expect4xx("NO-SUCH-CODE", 422, "unknown_promo_code");
    for (const bad of ["ab", "x".repeat(33), "-LEADING", "HAS SPACE", "ÜMLAUT", "a\u0000b", "ﬀ-LIGATURE"])
      await expect4xx(bad, 400, "invalid_request");
    const short = await makeCode(app, { expires_at: "2026-11-15T13:00:00Z" });
    clock.set(new Date("2026-11-15T13:00:00Z"));
    await expect4xx(short.code, 422, "promo_code_expired");
    const off = await makeCode(app);
    const deactivated = await app.call("POST", `${CODES}/${off.id}/deactivate`, { key: TEST_ADMIN_KEY });
    expect(deactivated.status).toBe(200);
    expect(deactivated.json).toMatchObject({ active: false, deactivated_at: "2026-11-15T13:00:00.000Z" });
    await expect4xx(off.code, 422, "promo_code_inactive");
    const one = await makeCode(app, { max_redemptions: 1 });
    const other = await app.createOrg("Other");
    expect((await redeem(app, other.orgKey, one.code)).status).toBe(201);
    await expect4xx(one.code, 422, "promo_code_exhausted");
    // The org that has it is told so, even once the code ran out.
    const theirs = await redeem(app, other.orgKey, one.code);
    expect(theirs.json.error.code).toBe("promo_code_already_redeemed");
    const [moved] = await db.sql<{ n: number }[]>`
      select count(*)::int as n from ledger_transactions where org_id = ${org.id}`;
    expect(moved?.n).toBe(0);
    // Missing or extra fields.
    expect((await app.call("POST", REDEEM, { key: org.orgKey, body: {} })).status).toBe(400);
    expect((await app.call("POST", REDEEM, { key: org.orgKey, body: { code: one.code, amount: "9" } })).status).toBe(
      400,
    );
    // Operators only: an org key cannot make codes.
    const forbidden = await app.call("POST", CODES, {
      key: org.orgKey,
      body: { code: "MINE", amount: "1000", max_redemptions: 1 },
    });
    expect(forbidden.status).toBe(403);
  });

  it("first_top_up_only: refused to an org credited a paid top-up (even refunded since), granted to one never paid", async ({
    app,
    db,
  }) => {
    clock.set(new Date("2026-11-15T12:00:00Z"));
    const code = await makeCode(app, { first_top_up_only: true });
    const paid = await app.createOrg("Paid");
    const ctx = createBillingContext({ sql: db.appSql, clock });
    await db.appSql`insert into processor_customers (org_id, customer_id, default_payment_method, linked_at)
                    values (${paid.id}, ${`cus_promo_${paid.id}`}, ${`pm_promo_${paid.id}`}, ${clock()})`;
    await db.appSql.begin((tx) =>
      creditCardTopup(
        { ...ctx, sql: tx },
        {
          orgId: paid.id,
          paymentId: `pi_promo_${paid.id}`,
          chargeId: `ch_promo_${paid.id}`,
          currency: "usd",
          amountMinor: 500n,
        },
      ),
    );
    const refused = await redeem(app, paid.orgKey, code.code);
    expect(refused.status, refused.text).toBe(422);
    expect(refused.json.error.code).toBe("promo_code_first_top_up_only");
    // Grants (even another promo) are not paid top-ups.
    const fresh = await app.createOrg("Fresh");
    await app.grant(fresh.id, "3");
    expect((await redeem(app, fresh.orgKey, code.code)).status).toBe(201);
  });

  it("operators: validation, the same code again, listing with counts, deactivation", async ({ app }) => {
    clock.set(new Date("2026-11-15T12:00:00Z"));
    const create = (body: Record<string, unknown>) => app.call("POST", CODES, { key: TEST_ADMIN_KEY, body });
    const ok = { code: "SPRING-2027", amount: "10", max_redemptions: 3 };
    for (const [bad, param] of [
      [{ ...ok, amount: "10000.000000001" }, "amount"],
      [{ ...ok, amount: "0" }, "amount"],
      [{ ...ok, amount: "-5" }, "amount"],
      [{ ...ok, amount: 10 }, "amount"],
      [{ ...ok, max_redemptions: 0 }, "max_redemptions"],
      [{ ...ok, max_redemptions: 1_000_001 }, "max_redemptions"],
      [{ ...ok, max_redemptions: 1.5 }, "max_redemptions"],
      [{ ...ok, grant_expires_in_days: 0 }, "grant_expires_in_days"],
      [{ ...ok, grant_expires_in_days: 3651 }, "grant_expires_in_days"],
      [{ ...ok, expires_at: "2026-11-15T12:00:00Z" }, "expires_at"],
      [{ ...ok, expires_at: "yesterday" }, "expires_at"],
      [{ ...ok, code: "no" }, "code"],
      [{ ...ok, code: "bad/code" }, "code"],
      [{ ...ok, first_top_up_only: "yes" }, "first_top_up_only"],
    ] as const) {
      const res = await create(bad);
      expect(res.status, `${JSON.stringify(bad)}: ${res.text}`).toBe(400);
      expect(res.json.error.param).toBe(param);
    }
    const made = await create(ok);
    expect(made.status, made.text).toBe(201);
    expect(made.json).toMatchObject({
      code: "SPRING-2027",
      amount_nano_usd: "10000000000",
      expires_at: null,
      grant_expires_in_days: null,
      max_redemptions: 3,
      redemption_count: 0,
      first_top_up_only: false,
      active: true,
    });
    // The same code (any case) with the same terms answers the first; with other terms, 409.
    const again = await create({ ...ok, code: "spring-2027" });
    expect(again.status).toBe(200);
    expect(again.json.id).toBe(made.json.id);
    const clash = await create({ ...ok, amount: "11" });
    expect(clash.status).toBe(409);
    expect(clash.json.error.code).toBe("conflict");

    const page1 = await app.call("GET", `${CODES}?limit=1`, { key: TEST_ADMIN_KEY });
    expect(page1.status).toBe(200);
    expect(page1.json.data).toHaveLength(1);
    const seen = [page1.json.data[0].id];
    let cursor = page1.json.next_cursor;
    while (cursor) {
      const page = await app.call("GET", `${CODES}?limit=50&cursor=${cursor}`, { key: TEST_ADMIN_KEY });
      seen.push(...page.json.data.map((c: { id: string }) => c.id));
      cursor = page.json.next_cursor;
    }
    expect(seen).toContain(made.json.id);
    expect(new Set(seen).size).toBe(seen.length);
    expect((await app.call("GET", `${CODES}?cursor=nonsense`, { key: TEST_ADMIN_KEY })).status).toBe(400);

    const off = await app.call("POST", `${CODES}/${made.json.id}/deactivate`, { key: TEST_ADMIN_KEY });
    clock.advance(1000);
    const offAgain = await app.call("POST", `${CODES}/${made.json.id}/deactivate`, { key: TEST_ADMIN_KEY });
    expect(offAgain.json.deactivated_at).toBe(off.json.deactivated_at);
    expect((await app.call("POST", `${CODES}/promo_nope/deactivate`, { key: TEST_ADMIN_KEY })).status).toBe(404);
  });
});
