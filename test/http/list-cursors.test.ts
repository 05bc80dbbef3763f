/**
 * Cursors a client made up, on the lists that page by a cursor (helper-87):
 * - a time cursor must hold a time PostgreSQL takes: year 0000 (which Date.parse accepts) was a
 *   500 (22008), and 30 February reads back as 2 March, so it is refused too;
 * - an invoices cursor that is none of the org's invoices was an empty last page (has_more false),
 *   which reads as "no more invoices".
 */
import { describe, expect } from "vitest";
import { manualClock, TEST_ADMIN_KEY } from "../support/app.js";
import { appTest as it } from "../support/fixtures.js";
import { closeCycles, subscribeTo } from "../support/plan-calls.js";
import { makeCode } from "../promo/support.js";

const clock = manualClock(new Date("2026-11-15T12:00:00Z"));
const cursor = (s: string) => Buffer.from(s).toString("base64url");

describe("list cursors a client made up", () => {
  it.scoped({ appOptions: { clock } });

  it.for(["0000-01-01", "2026-02-30"])(
    "a grants cursor dated %s is 400 invalid_request naming cursor, not a 500",
    async (day, { app }) => {
      clock.set(new Date("2026-11-15T12:00:00Z"));
      const org = await app.createOrg(`cursor ${day}`);
      await app.grant(org.id, "1.00");
      await app.grant(org.id, "2.00");
      const res = await app.call(
        "GET",
        `/v1/billing/grants?limit=1&cursor=${cursor(`t:${day}T00:00:00.000000Z|grant_x`)}`,
        {
          key: org.orgKey,
        },
      );
      expect({ status: res.status, code: res.json?.error?.code, param: res.json?.error?.param }, res.text).toEqual({
        status: 400,
        code: "invalid_request",
        param: "cursor",
      });
    },
  );

  it("a promo-codes cursor dated 0000-01-01 is 400 invalid_request naming cursor, not a 500", async ({ app }) => {
    clock.set(new Date("2026-11-15T12:00:00Z"));
    await makeCode(app);
    const res = await app.call(
      "GET",
      `/v1/admin/promo-codes?cursor=${cursor("t:0000-01-01T00:00:00.000000Z|promo_x")}`,
      { key: TEST_ADMIN_KEY },
    );
    expect({ status: res.status, code: res.json?.error?.code, param: res.json?.error?.param }, res.text).toEqual({
      status: 400,
      code: "invalid_request",
      param: "cursor",
    });
  });

  it("an invoices cursor that is none of the org's invoices is 400, not an empty last page", async ({ app }) => {
    clock.set(new Date("2026-10-05T00:00:00Z"));
    const org = await app.createOrg("Invoices");
    expect((await subscribeTo(app, org.id, "pro")).status).toBe(200);
    clock.set(new Date("2026-11-01T00:00:05Z"));
    await closeCycles(app, org.id);
    clock.set(new Date("2026-12-01T00:00:05Z"));
    await closeCycles(app, org.id);
    const all = await app.call("GET", "/v1/billing/invoices", { key: org.orgKey });
    expect(all.json.data).toHaveLength(2);
    const made = await app.call("GET", "/v1/billing/invoices?cursor=inv_doesnotexist", { key: org.orgKey });
    expect({ status: made.status, code: made.json?.error?.code, param: made.json?.error?.param }).toEqual({
      status: 400,
      code: "invalid_request",
      param: "cursor",
    });
  });

  it("a top-ups cursor dated 0000-01-01 is 400 invalid_request naming cursor, not a 500", async ({ app }) => {
    clock.set(new Date("2026-11-15T12:00:00Z"));
    const org = await app.createOrg("Top-ups");
    const res = await app.call("GET", `/v1/billing/topups?cursor=${cursor("t:0000-01-01T00:00:00.000000Z|dep_x")}`, {
      key: org.orgKey,
    });
    expect({ status: res.status, code: res.json?.error?.code, param: res.json?.error?.param }, res.text).toEqual({
      status: 400,
      code: "invalid_request",
      param: "cursor",
    });
  });
});
