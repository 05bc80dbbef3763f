import { expect } from "vitest";
import { TEST_ADMIN_KEY, type TestApp } from "../support/app.js";

export const CODES = "/v1/admin/promo-codes";
export const REDEEM = "/v1/billing/promo-codes/redeem";

let made = 0;

/** An operator's promo code through the API: $5.00, 10 redemptions, a fresh code, unless `terms` say otherwise. */
export async function makeCode(app: TestApp, terms: Record<string, unknown> = {}) {
  const res = await app.call("POST", CODES, {
    key: TEST_ADMIN_KEY,
    body: {
      code: `code-${++made}-${Math.random().toString(36).slice(2, 8)}`,
      amount: "5.00",
      max_redemptions: 10,
      ...terms,
    },
  });
  expect(res.status, res.text).toBe(201);
  return res.json as { id: string; code: string; redemption_count: number };
}

/** An org's redemption of `code` (any JSON value, so tests can send wrong types). */
export const redeem = (app: TestApp, key: string, code: unknown) => app.call("POST", REDEEM, { key, body: { code } });
