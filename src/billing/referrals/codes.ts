import { randomInt } from "node:crypto";
import type { Sql, TransactionSql } from "../../db/client.js";

const ALPHABET = "abcdefghijklmnopqrstuvwxyz0123456789";
const CODE_LENGTH = 12; // 36^12 ≈ 4.7e18 codes (62 bits): not found by trying

/** A new random code: 12 lowercase letters and digits from the system's CSPRNG. */
export function newReferralCode(): string {
  let code = "";
  for (let i = 0; i < CODE_LENGTH; i++) code += ALPHABET[randomInt(ALPHABET.length)];
  return code;
}

/**
 * The org's referral code, made on its first use and the same forever after. Racing first uses
 * insert once (the org is the key) and every caller reads the winner's code.
 */
export async function referralCodeOf(sql: Sql | TransactionSql, orgId: string, now: Date): Promise<string> {
  const [existing] = await sql<{ code: string }[]>`select code from referral_codes where org_id = ${orgId}`;
  if (existing) return existing.code;
  await sql`insert into referral_codes (org_id, code, created_at) values (${orgId}, ${newReferralCode()}, ${now})
            on conflict (org_id) do nothing`;
  const [row] = await sql<{ code: string }[]>`select code from referral_codes where org_id = ${orgId}`;
  if (!row) throw new Error(`no referral code for ${orgId} after making one`);
  return row.code;
}
