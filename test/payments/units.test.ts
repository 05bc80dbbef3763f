import { pino } from "pino";
import { describe, expect, it } from "vitest";
import { createBillingContext, withTransaction } from "../../src/billing/context.js";
import { centsToNanoUsd } from "../../src/billing/payments/card-payment.js";
import { creditCardTopup } from "../../src/billing/payments/credit-card-topup.js";
import { formatExpiry } from "../../src/billing/payments/payment-methods.js";
import { createOrganization } from "../../src/billing/organizations.js";
import { dbTest } from "../support/fixtures.js";
import { findLeaks, processorId } from "../support/processor.js";

describe("card payment helpers", () => {
  it("converts cents to nano-USD exactly, beyond what a double holds", () => {
    expect(centsToNanoUsd(1n)).toBe(10_000_000n);
    expect(centsToNanoUsd(2599n)).toBe(25_990_000_000n);
    expect(centsToNanoUsd(99_999_999n)).toBe(999_999_990_000_000n);
    expect(centsToNanoUsd(900_719_925_474_099n)).toBe(9_007_199_254_740_990_000_000n);
  });

  it("formats expiry as MM/YY", () => {
    expect(formatExpiry(12, 2028)).toBe("12/28");
    expect(formatExpiry(3, 2031)).toBe("03/31");
    expect(formatExpiry(1, 2100)).toBe("01/00");
  });

  it("the leak scanner itself finds card numbers, processor ids and secrets (and not our own ids)", () => {
    const pm = processorId("pm");
    expect(findLeaks(['{"n":"4242424242424242"}'])).toHaveLength(1);
    expect(
      findLeaks([
        '{"c":"cus_NffrFeUfNV2Hib"}',
        '{"p":"pi_3MtwBwLkdIwHu7ix28a3tqPa"}',
        "ch_1x",
        "whsec_abc",
        "sk_live_1",
      ]),
    ).toHaveLength(5);
    expect(findLeaks([`{"id":"${pm}"}`], [pm])).toHaveLength(1);
    expect(
      findLeaks([
        '{"id":"pm_4fJ2kQ9x0cT1mB7rW3yZ","type":"api_error","kind":"card_topup","balance_nano_usd":"999999999999"}',
      ]),
    ).toEqual([]);
  });
});

describe("creditCardTopup", () => {
  dbTest("refuses another currency with a warning naming the org and the currency", async ({ db }) => {
    const lines: string[] = [];
    const logger = pino({ level: "warn" }, { write: (line: string) => void lines.push(line) });
    const ctx = createBillingContext({ sql: db.sql, logger });
    const org = await createOrganization(ctx, { name: "Euro" });
    const outcome = await withTransaction(ctx, (tx) =>
      creditCardTopup(tx, {
        orgId: org.id,
        paymentId: processorId("pi"),
        chargeId: null,
        currency: "gbp",
        amountMinor: 700n,
      }),
    );
    expect(outcome).toBe("refused_currency");
    const warning = JSON.parse(lines.at(-1)!);
    expect(warning).toMatchObject({ level: 40, org_id: org.id, currency: "gbp", amount_minor: "700" });
    expect(warning.msg).toMatch(/other than usd/);
  });
});
