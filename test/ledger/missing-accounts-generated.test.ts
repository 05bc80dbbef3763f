import fc from "fast-check";
import { describe, expect } from "vitest";
import { createOrganization } from "../../src/billing/organizations.js";
import { orgCreditsAccount, SystemAccounts } from "../../src/ledger/accounts.js";
import { testContext } from "../support/context.js";
import { dbTest as it } from "../support/fixtures.js";
import { expectLedgerConsistent } from "../support/ledger.js";

// An attack on ledger_apply_to_balance's missing-account check: the missing-account search now runs only
// when fewer accounts were found than named. Generated statements over hundreds of accounts, some
// named several times, with missing accounts among them (one, several, the same one repeated, one
// whose entries cancel out, all of them missing), as one INSERT: any missing account refuses the
// whole statement with 23503 and no balance moves; with none missing, every balance moves by
// exactly its entries. fast-check keeps generated arrays short (a dozen entries at most, at its
// default size), so two statements of 600 entries run first: one naming every account, one with a
// single missing account among them.
const N = 300;

describe("a ledger statement naming missing accounts", () => {
  it.scoped({ dbOptions: { max: 4 } });

  it("is refused whole with 23503, and applied whole when every account exists", { timeout: 300_000 }, async ({
    db,
  }) => {
    const ctx = testContext(db.sql);
    const orgs: string[] = [];
    for (let i = 0; i < N; i += 50)
      orgs.push(
        ...(await Promise.all(
          Array.from({ length: 50 }, (_, j) => createOrganization(ctx, { name: `Missing ${i + j}` }).then((o) => o.id)),
        )),
      );
    const accounts = orgs.map(orgCreditsAccount);
    const balances = async () => {
      const rows = await db.sql<{ id: string; balance: bigint }[]>`
        select id, balance from ledger_accounts where id = any (${accounts}::text[])`;
      return new Map(rows.map((r) => [r.id, r.balance]));
    };
    const revenue = async () => {
      const [r] = await db.sql<{ s: bigint }[]>`
        select coalesce(sum(amount), 0)::bigint as s from ledger_entries where account_id = ${SystemAccounts.revenue}`;
      return r!.s;
    };
    const missingNames = [
      "org:org_nobody:credits",
      "org:org_ghost:credits",
      `${accounts[0]} `, // an existing id with a trailing space
      accounts[1]!.toUpperCase(),
      "system:nowhere",
      "",
    ];

    const entryArb = fc.oneof(
      { weight: 60, arbitrary: fc.record({ missing: fc.constant(-1), account: fc.integer({ min: 0, max: N - 1 }) }) },
      {
        weight: 1,
        arbitrary: fc.record({
          missing: fc.integer({ min: 0, max: missingNames.length - 1 }),
          account: fc.constant(0),
        }),
      },
    );
    type Entry = [{ missing: -1; account: number } | { missing: number; account: 0 }, number, boolean];
    const bigStatement = (missingAt: number): [Entry[], "mixed"] => [
      Array.from(
        { length: 600 },
        (_, i): Entry => [
          i === missingAt ? { missing: 0, account: 0 as const } : { missing: -1 as const, account: i % N },
          (i % 9) + 1,
          i % 2 === 0,
        ],
      ),
      "mixed",
    ];
    let run = 0;
    let refused = 0;
    let applied = 0;
    await fc.assert(
      fc.asyncProperty(
        fc.array(fc.tuple(entryArb, fc.integer({ min: 1, max: 9 }), fc.boolean()), { minLength: 1, maxLength: 600 }),
        fc.constantFrom("mixed", "all-missing", "cancelling-missing", "repeated-missing"),
        async (list, shape) => {
          run++;
          let entries: [string, bigint][] = list.map(([e, amount, neg]) => [
            e.missing >= 0 ? missingNames[e.missing]! : accounts[e.account]!,
            neg ? -BigInt(amount) : BigInt(amount),
          ]);
          if (shape === "all-missing") entries = entries.map(([, a], i): [string, bigint] => [missingNames[i % 2]!, a]);
          if (shape === "cancelling-missing")
            entries.push(["org:org_cancel:credits", 7n], ["org:org_cancel:credits", -7n]);
          if (shape === "repeated-missing")
            for (let i = 0; i < 50; i++) entries.push(["org:org_again:credits", i % 2 === 0 ? 3n : -3n]);
          const sum = entries.reduce((s, [, a]) => s + a, 0n);
          if (sum !== 0n) entries.push([SystemAccounts.revenue, -sum]);
          const missing = entries.some(([id]) => !accounts.includes(id) && id !== SystemAccounts.revenue);

          const before = await balances();
          const revBefore = await revenue();
          const id = `txn_missing_${run}_${Math.random().toString(36).slice(2)}`;
          const post = db.sql.begin(async (tx) => {
            await tx`insert into ledger_transactions (id, org_id, kind, idempotency_key) values (${id}, ${orgs[0]!}, 'grant', ${id})`;
            const rows = entries.map(([account_id, amount]) => ({
              transaction_id: id,
              account_id,
              amount: amount.toString(),
            }));
            await tx`insert into ledger_entries ${tx(rows, "transaction_id", "account_id", "amount")}`;
          });
          const moneyNow = async () => ({ b: await balances(), r: await revenue() });
          if (missing) {
            await expect(post, `shape ${shape}, ${entries.length} entries`).rejects.toMatchObject({ code: "23503" });
            const a = await moneyNow();
            expect(a.b).toEqual(before);
            expect(a.r).toBe(revBefore);
            const [txn] = await db.sql<
              { n: number }[]
            >`select count(*)::int as n from ledger_transactions where id = ${id}`;
            expect(txn!.n).toBe(0);
            refused++;
          } else {
            await post;
            const expected = new Map(before);
            for (const [acc, amount] of entries)
              if (acc !== SystemAccounts.revenue) expected.set(acc, expected.get(acc)! + amount);
            const a = await moneyNow();
            expect(a.b).toEqual(expected);
            applied++;
            expect(a.r).toBe(
              revBefore + entries.filter(([acc]) => acc === SystemAccounts.revenue).reduce((s, [, x]) => s + x, 0n),
            );
          }
        },
      ),
      { numRuns: 150, examples: [bigStatement(-1), bigStatement(300)] },
    );
    expect(refused).toBeGreaterThan(20);
    expect(applied).toBeGreaterThan(10);
    await expectLedgerConsistent(db.sql);
  });

  it("refuses entries on an account whose organization is named twice, once missing, in every position", async ({
    db,
  }) => {
    // The missing account first, last, and the only non-system one; amounts that cancel per account.
    const ctx = testContext(db.sql);
    const org = (await createOrganization(ctx, { name: "Missing single" })).id;
    const acc = orgCreditsAccount(org);
    const cases: [string, bigint][][] = [
      [
        ["org:org_missing:credits", 5n],
        [acc, 5n],
        [SystemAccounts.revenue, -10n],
      ],
      [
        [acc, 5n],
        [SystemAccounts.revenue, -10n],
        ["org:org_missing:credits", 5n],
      ],
      [
        ["org:org_missing:credits", 5n],
        [SystemAccounts.revenue, -5n],
      ],
      [
        ["org:org_missing:credits", 5n],
        ["org:org_missing:credits", -5n],
        [acc, 1n],
        [SystemAccounts.revenue, -1n],
      ],
      [
        [acc, 1n],
        [acc, -1n],
        ["org:org_missing:credits", 2n],
        [SystemAccounts.revenue, -2n],
      ],
    ];
    for (const entries of cases) {
      const id = `txn_missing_single_${Math.random().toString(36).slice(2)}`;
      const post = db.sql.begin(async (tx) => {
        await tx`insert into ledger_transactions (id, org_id, kind, idempotency_key) values (${id}, ${org}, 'grant', ${id})`;
        const rows = entries.map(([account_id, amount]) => ({
          transaction_id: id,
          account_id,
          amount: amount.toString(),
        }));
        await tx`insert into ledger_entries ${tx(rows, "transaction_id", "account_id", "amount")}`;
      });
      await expect(post).rejects.toMatchObject({ code: "23503", message: expect.stringMatching(/org_missing/) });
    }
    const [a] = await db.sql<{ balance: bigint }[]>`select balance from ledger_accounts where id = ${acc}`;
    expect(a!.balance).toBe(0n);
  });
});
