import { describe, expect } from "vitest";
import { grantCredits } from "../../src/billing/grants.js";
import { createOrganization } from "../../src/billing/organizations.js";
import { contextAt } from "../support/context.js";
import { dbTest as it } from "../support/fixtures.js";

/**
 * The auto top-up rules hold in PostgreSQL whatever code writes (migration 0026): one charge per
 * crossing, one charge in flight per org, a month's charges within its limit, settings in whole
 * cents with a limit of at least the amount. Written as the app's role.
 */
describe("auto top-up constraints", () => {
  async function setup(sql: import("../../src/db/client.js").Sql) {
    const now = new Date("2026-11-15T12:00:00Z");
    const ctx = contextAt(sql, now);
    const org = (await createOrganization(ctx, { name: "C" })).id;
    for (let i = 0; i < 3; i++) {
      const { grant } = await grantCredits(ctx, { orgId: org, amount: 1n, reason: "c", idempotencyKey: `c-${i}` });
      await sql`insert into auto_topup_crossings (id, org_id, transaction_id, balance, threshold, created_at)
                values (${`atc_${i}${org}`}, ${org}, ${grant.transactionId}, 0, 1, ${now})`;
    }
    const charge = (id: string, crossing: number, status = "pending") =>
      sql`insert into auto_topup_charges (id, crossing_id, org_id, amount, month, status, created_at, updated_at)
          values (${id}, ${`atc_${crossing}${org}`}, ${org}, 25000000000, '2026-11-01', ${status}, ${now}, ${now})`;
    return { org, now, charge };
  }

  const refused = async (run: () => Promise<unknown>) => {
    try {
      await run();
    } catch (err) {
      return (err as { code?: string }).code;
    }
    return "allowed";
  };

  it("a second charge for a crossing, or a second in flight for an org, is refused", async ({ db }) => {
    const { charge } = await setup(db.appSql);
    await charge("atp_a", 0);
    expect(await refused(() => charge("atp_b", 0, "declined"))).toBe("23505");
    expect(await refused(() => charge("atp_c", 1))).toBe("23505");
    expect(await refused(() => charge("atp_d", 1, "declined"))).toBe("allowed");
  });

  it("a month's charges never exceed its limit", async ({ db }) => {
    const { org } = await setup(db.appSql);
    await db.appSql`insert into auto_topup_months (org_id, month, charged, monthly_limit) values (${org}, '2026-11-01', 50, 50)`;
    expect(
      await refused(() => db.appSql`update auto_topup_months set charged = charged + 1 where org_id = ${org}`),
    ).toBe("23514");
  });

  it("settings refuse fractions of a cent and a limit below the amount", async ({ db }) => {
    const { org, now } = await setup(db.appSql);
    const put = (amount: bigint, limit: bigint) =>
      db.appSql`insert into auto_topup_settings (org_id, enabled, threshold, amount, monthly_limit, updated_at)
                values (${org}, true, 0, ${amount.toString()}, ${limit.toString()}, ${now})`;
    expect(await refused(() => put(5_000_000_001n, 10_000_000_000n))).toBe("23514");
    expect(await refused(() => put(5_000_000_000n, 4_000_000_000n))).toBe("23514");
  });
});
