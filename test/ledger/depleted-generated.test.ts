import fc from "fast-check";
import { describe, expect } from "vitest";
import { createOrganization } from "../../src/billing/organizations.js";
import { orgCreditsAccount, SystemAccounts } from "../../src/ledger/accounts.js";
import { testContext } from "../support/context.js";
import { dbTest as it } from "../support/fixtures.js";
import { expectLedgerConsistent } from "../support/ledger.js";

// balance.depleted is judged by the ledger's balance trigger (ledger_apply_to_balance) from the
// balances its update returns. Generated statements of ledger entries, each holding one to three
// transactions over a few organizations' credits accounts, against a model: an organization whose
// credits balance goes from above zero to zero or below in a statement gets exactly one event,
// naming its most negative transaction of that statement and the balance after it; no other
// statement makes one. One organization also has an old held account (from before migration
// 0037) with money left in it: its balance is still judged on its credits account alone, the
// balance the API shows and balance.low judges.
const ORGS = 4;

type Statement = { txns: { entries: { org: number; amount: number }[] }[] };

describe("balance.depleted from generated ledger statements", () => {
  it.scoped({ dbOptions: { max: 4 } });

  it("is told once for each organization a statement takes from above zero to zero or below", {
    timeout: 300_000,
  }, async ({ db }) => {
    const ctx = testContext(db.sql);
    const orgs = await Promise.all(
      Array.from({ length: ORGS }, (_, i) => createOrganization(ctx, { name: `Depleted ${i}` }).then((o) => o.id)),
    );
    const legacy = orgs[ORGS - 1]!;
    const legacyHeld = `org:${legacy}:held`;
    await db.sql`insert into ledger_accounts (id, org_id, kind) values (${legacyHeld}, ${legacy}, 'org_held')`;

    let run = 0;
    const post = (txns: { id: string; entries: [string, bigint][] }[]) =>
      db.sql.begin(async (tx) => {
        const rows = txns.map((t) => ({ id: t.id, org_id: orgs[0]!, kind: "grant", idempotency_key: t.id }));
        await tx`insert into ledger_transactions ${tx(rows, "id", "org_id", "kind", "idempotency_key")}`;
        const entries = txns.flatMap((t) =>
          t.entries.map(([account_id, amount]) => ({ transaction_id: t.id, account_id, amount: amount.toString() })),
        );
        await tx`insert into ledger_entries ${tx(entries, "transaction_id", "account_id", "amount")}`;
      });
    const balanced = (entries: [string, bigint][]): [string, bigint][] => {
      const sum = entries.reduce((s, [, a]) => s + a, 0n);
      return sum === 0n ? entries : [...entries, [SystemAccounts.revenue, -sum]];
    };
    const depletedEvents = async () =>
      db.sql<{ org_id: string; fact_key: string; data: { balance_nano_usd: string; transaction_id: string } }[]>`
        select org_id, fact_key, data from billing_events
        where type = 'balance.depleted' and org_id = any (${orgs}::text[])`;

    // The legacy org's held account keeps 100 of its money: credits+held would be 100 above its credits.
    await post([
      {
        id: `txn_dep_legacy_${Date.now()}`,
        entries: [
          [orgCreditsAccount(legacy), -100n],
          [legacyHeld, 100n],
        ],
      },
    ]);

    const statementArb: fc.Arbitrary<Statement> = fc.record({
      txns: fc.array(
        fc.record({
          entries: fc.array(
            fc.record({
              org: fc.integer({ min: 0, max: ORGS - 1 }),
              amount: fc.integer({ min: -40, max: 30 }).filter((a) => a !== 0),
            }),
            { minLength: 1, maxLength: 4 },
          ),
        }),
        { minLength: 1, maxLength: 3 },
      ),
    });

    let told = 0;
    await fc.assert(
      fc.asyncProperty(fc.array(statementArb, { minLength: 1, maxLength: 12 }), async (statements) => {
        run++;
        // Each run starts every organization at a small positive balance (its own statement, told nothing).
        const start = await db.sql<{ id: string; balance: bigint }[]>`
          select id, balance from ledger_accounts where id = any (${orgs.map(orgCreditsAccount)}::text[])`;
        const now = new Map(start.map((r) => [r.id, r.balance]));
        const reset = orgs
          .map((o, i): [string, bigint] => [
            orgCreditsAccount(o),
            10n + BigInt(i) * 7n - now.get(orgCreditsAccount(o))!,
          ])
          .filter(([, a]) => a !== 0n);
        if (reset.length > 0) await post([{ id: `txn_dep_${run}_reset`, entries: balanced(reset) }]);
        const model = new Map(orgs.map((o, i) => [o, 10n + BigInt(i) * 7n]));
        const before = new Set((await depletedEvents()).map((e) => e.fact_key));
        const expected: { fact_key: string; org_id: string; balance: bigint; txn: string }[] = [];

        for (const [s, statement] of statements.entries()) {
          const txns = statement.txns.map((t, k) => ({
            id: `txn_dep_${run}_${s}_${k}`,
            entries: balanced(
              t.entries.map((e): [string, bigint] => [orgCreditsAccount(orgs[e.org]!), BigInt(e.amount)]),
            ),
          }));
          await post(txns);
          for (const org of orgs) {
            const perTxn = txns
              .map((t) => ({
                id: t.id,
                net: t.entries.filter(([a]) => a === orgCreditsAccount(org)).reduce((x, [, a]) => x + a, 0n),
                touched: t.entries.some(([a]) => a === orgCreditsAccount(org)),
              }))
              .filter((t) => t.touched);
            const total = perTxn.reduce((x, t) => x + t.net, 0n);
            const was = model.get(org)!;
            const after = was + total;
            model.set(org, after);
            if (total < 0n && after <= 0n && was > 0n) {
              const worst = [...perTxn].sort((a, b) =>
                a.net < b.net ? -1 : a.net > b.net ? 1 : a.id < b.id ? -1 : 1,
              )[0]!;
              expected.push({ fact_key: `${worst.id}:${org}`, org_id: org, balance: after, txn: worst.id });
            }
          }
        }

        // Both sides in JavaScript's order (the database's collation may order the keys otherwise).
        const byKey = (a: { fact_key: string }, b: { fact_key: string }) => (a.fact_key < b.fact_key ? -1 : 1);
        const got = (await depletedEvents()).filter((e) => !before.has(e.fact_key));
        expect(
          got
            .map((e) => ({
              fact_key: e.fact_key,
              org_id: e.org_id,
              balance: BigInt(e.data.balance_nano_usd),
              txn: e.data.transaction_id,
            }))
            .sort(byKey),
        ).toEqual(expected.sort(byKey));
        told += expected.length;
        const balances = await db.sql<{ id: string; balance: bigint }[]>`
          select id, balance from ledger_accounts where id = any (${orgs.map(orgCreditsAccount)}::text[])`;
        expect(new Map(balances.map((r) => [r.id, r.balance]))).toEqual(
          new Map(orgs.map((o) => [orgCreditsAccount(o), model.get(o)!])),
        );
      }),
      { numRuns: 60 },
    );
    expect(told).toBeGreaterThan(20);
    // The legacy org was told too, on its credits alone (with its old held account, it had 100 more).
    expect((await depletedEvents()).some((e) => e.org_id === legacy)).toBe(true);
    await post([
      {
        id: `txn_dep_legacy_back_${Date.now()}`,
        entries: [
          [legacyHeld, -100n],
          [orgCreditsAccount(legacy), 100n],
        ],
      },
    ]);
    await expectLedgerConsistent(db.sql);
  });
});
