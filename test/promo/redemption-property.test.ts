import fc from "fast-check";
import { describe, expect } from "vitest";
import { at } from "../../src/billing/context.js";
import { createOrganization } from "../../src/billing/organizations.js";
import { createPromoCode } from "../../src/billing/promo-codes/create-promo-code.js";
import { redeemPromoCode } from "../../src/billing/promo-codes/redeem-promo-code.js";
import { BillingError } from "../../src/errors.js";
import { modelSettings } from "../model/settings.js";
import { testContext } from "../support/context.js";
import { dbTest as it } from "../support/fixtures.js";

/**
 * The redemption invariants, over generated codes and racing redemptions (rounds of attempts
 * sent at once, an org possibly several times in a round):
 * - a code's redemptions never exceed max_redemptions, and its counter equals them;
 * - at most one redemption per org per code;
 * - the promo credits in the ledger (kind promo_credit, to the orgs) are redemptions × amount,
 *   one grant of source promo per redemption;
 * - every attempt is a redemption or one of the documented refusals, and a refusal is the one the
 *   state calls for (already redeemed if the org has it, else exhausted);
 * - an attempt with an idempotency key the org's redemption was made with is answered with that
 *   redemption (a replay), in its round or later; one with another key or none is never.
 */
const { runs, seed } = modelSettings(12);
const scenario = fc.record({
  max: fc.integer({ min: 1, max: 4 }),
  orgs: fc.integer({ min: 1, max: 6 }),
  cents: fc.integer({ min: 1, max: 100_000 }),
  rounds: fc.array(
    fc.array(fc.record({ org: fc.nat(5), key: fc.option(fc.nat(2), { nil: undefined }) }), {
      minLength: 1,
      maxLength: 8,
    }),
    { minLength: 1, maxLength: 4 },
  ),
});

describe("promo redemption invariants", () => {
  it.scoped({ dbOptions: { max: 12 } });

  it("redemptions ≤ max, one per org, ledger promo credits = redemptions × amount", { timeout: 300_000 }, async ({
    db,
  }) => {
    let run = 0;
    const now = new Date("2026-11-20T00:00:00Z");
    const ctx = at(testContext(db.appSql), now);
    await fc.assert(
      fc.asyncProperty(scenario, async (s) => {
        run++;
        const orgIds: string[] = [];
        for (let i = 0; i < s.orgs; i++)
          orgIds.push((await createOrganization(ctx, { name: `P${run}-${i}`, id: `org_prop${run}x${i}` })).id);
        const amount = BigInt(s.cents) * 10_000_000n;
        const { promoCode } = await createPromoCode(ctx, {
          code: `PROP-${run}-${seed}`,
          amount,
          expiresAt: null,
          grantExpiresInDays: run % 2 === 0 ? 7 : null,
          maxRedemptions: s.max,
          firstTopUpOnly: false,
        });
        const won = new Set<string>();
        // Each org's redemption: its id and the key it was made with.
        const redemptionOf = new Map<string, { id: string; key: string | undefined }>();
        for (const round of s.rounds) {
          const attempts = round.map((a) => ({
            orgId: orgIds[a.org % orgIds.length] as string,
            key: a.key === undefined ? undefined : `key-${a.key}`,
          }));
          const before = new Set(won);
          const results = await Promise.allSettled(
            attempts.map(({ orgId, key }) =>
              redeemPromoCode(ctx, { orgId, code: promoCode.code.toLowerCase(), idempotencyKey: key }),
            ),
          );
          results.forEach((r, i) => {
            const { orgId, key } = attempts[i] as { orgId: string; key: string | undefined };
            if (r.status === "fulfilled" && r.value.created) {
              expect(won.has(orgId), `${orgId} redeemed twice`).toBe(false);
              won.add(orgId);
              redemptionOf.set(orgId, { id: r.value.id, key });
            }
          });
          results.forEach((r, i) => {
            const { orgId, key } = attempts[i] as { orgId: string; key: string | undefined };
            const mine = redemptionOf.get(orgId);
            const replay = key !== undefined && mine?.key === key;
            if (r.status === "fulfilled") {
              if (!r.value.created) expect(replay && r.value.id === mine?.id, `${orgId} ${key} replayed`).toBe(true);
              return;
            }
            expect(replay, `${orgId} ${key}: refused though its key made the redemption`).toBe(false);
            expect(r.reason).toBeInstanceOf(BillingError);
            const code = (r.reason as BillingError).code;
            // Had it before the round: told so. Otherwise it lost a race to itself or to the limit.
            if (before.has(orgId)) expect(code).toBe("promo_code_already_redeemed");
            else expect(["promo_code_already_redeemed", "promo_code_exhausted"]).toContain(code);
          });
          for (const r of results.filter((x) => x.status === "rejected")) {
            const code = (r.reason as BillingError).code;
            if (code === "promo_code_exhausted") expect(won.size).toBe(s.max);
          }
        }
        const distinct = new Set(s.rounds.flat().map((a) => a.org % orgIds.length)).size;
        expect(won.size).toBe(Math.min(s.max, distinct));
        const [row] = await db.sql<
          { count: number; redemptions: number; orgs: number; grants: number; ledger: string }[]
        >`
          select c.redemption_count as count,
                 (select count(*)::int from promo_redemptions r where r.promo_code_id = c.id) as redemptions,
                 (select count(distinct org_id)::int from promo_redemptions r where r.promo_code_id = c.id) as orgs,
                 (select count(*)::int from credit_grants g join promo_redemptions r on r.id = g.source_id
                   where r.promo_code_id = c.id and g.source = 'promo') as grants,
                 (select coalesce(sum(e.amount), 0)::text from ledger_entries e
                   join ledger_transactions t on t.id = e.transaction_id
                   where t.kind = 'promo_credit' and e.account_id like 'org:%' and t.org_id = any(${orgIds})) as ledger
          from promo_codes c where c.id = ${promoCode.id}`;
        expect(row).toEqual({
          count: won.size,
          redemptions: won.size,
          orgs: won.size,
          grants: won.size,
          ledger: (BigInt(won.size) * amount).toString(),
        });
        expect(row?.redemptions).toBeLessThanOrEqual(s.max);
      }),
      { numRuns: runs, seed, endOnFailure: true },
    );
  });
});
