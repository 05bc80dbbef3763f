import { loadConfig, type Config } from "../../src/config.js";
import type { Sql } from "../../src/db/client.js";
import { referralSettings, type ReferralSettings } from "../../src/billing/referrals/settings.js";
import { type JsonReply, TEST_ADMIN_KEY } from "../support/app.js";

type Caller = {
  call(
    method: string,
    path: string,
    init?: { key?: string | null; body?: unknown; headers?: Record<string, string> },
  ): Promise<{ status: number; json: JsonReply; text: string }>;
};

/** The referral terms of a test: the defaults with what the test overrides (env var names, as in the README). */
export function testReferralSettings(overrides: Partial<Record<keyof Config, string>> = {}): ReferralSettings {
  return referralSettings(loadConfig({ NODE_ENV: "test", ...overrides }));
}

/** An org with an org key, created through the API, with `referral_code` when given. */
export async function createOrgVia(app: Caller, name: string, referralCode?: string) {
  const org = await app.call("POST", "/v1/admin/orgs", {
    key: TEST_ADMIN_KEY,
    body: { name, ...(referralCode ? { referral_code: referralCode } : {}) },
  });
  if (org.status !== 201) throw new Error(`create org failed: ${org.text}`);
  const key = await app.call("POST", `/v1/admin/orgs/${org.json.id}/keys`, {
    key: TEST_ADMIN_KEY,
    body: { scope: "org" },
  });
  return { id: org.json.id as string, orgKey: key.json.key as string };
}

/** A referrer and an org created with its code. */
export async function referrerAndReferred(app: Caller, names: [string, string] = ["Referrer", "Referred"]) {
  const referrer = await createOrgVia(app, names[0]);
  const code = (await app.call("GET", "/v1/billing/referrals", { key: referrer.orgKey })).json.code as string;
  const referred = await createOrgVia(app, names[1], code);
  return { referrer, referred, code };
}

export type ReferralRowView = {
  id: string;
  state: string;
  reason: string | null;
  qualifying_kind: string | null;
  referrer_grant_id: string | null;
  referred_grant_id: string | null;
};

export async function referralOf(sql: Sql, referredOrgId: string): Promise<ReferralRowView> {
  const [row] = await sql<ReferralRowView[]>`
    select id, state, reason, qualifying_kind, referrer_grant_id, referred_grant_id from referrals where referred_org_id = ${referredOrgId}`;
  if (!row) throw new Error(`no referral for ${referredOrgId}`);
  return row;
}

/** Each org's referral movements: [kind, amount] in order. */
export async function referralMovements(sql: Sql, orgId: string): Promise<[string, bigint][]> {
  const rows = await sql<{ kind: string; amount: bigint }[]>`
    select t.kind, e.amount from ledger_transactions t
    join ledger_entries e on e.transaction_id = t.id and e.account_id = ${`org:${orgId}:credits`}
    where t.org_id = ${orgId} and t.kind in ('referral_credit', 'referral_clawback')
    order by t.created_at, t.id`;
  return rows.map((r) => [r.kind, BigInt(r.amount)]);
}
