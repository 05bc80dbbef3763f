import { readFile } from "node:fs/promises";
import { describe, expect } from "vitest";
import { dbTest as it } from "../support/fixtures.js";

/** 0019_husd_limits: the rows top-ups wrote for transfers to addresses that were no org's go; nothing else. */
describe("migration 0019_husd_limits", () => {
  it("deletes rejected deposits to unknown addresses and keeps every other deposit", async ({ db }) => {
    const [org] = await db.sql`insert into organizations (id, name) values ('org_mig19', 'Kept Co') returning id`;
    const row = (id: string, state: string, reason: string | null, orgId: string | null) => ({
      id,
      chain_id: 1,
      tx_hash: `0x${id.padEnd(64, "0")}`,
      log_index: 0,
      block_number: "1",
      block_hash: "0xb",
      token_address: "0xt",
      from_address: "0xf",
      to_address: `0x${id}`,
      org_id: orgId,
      amount: "1",
      state,
      reason,
      source: "topup",
      seen_at: new Date(),
      updated_at: new Date(),
    });
    await db.sql`insert into husd_deposits ${db.sql([
      row("unknown1", "rejected", "unknown_address: not an organization's deposit address", null),
      row("unknown2", "rejected", "unknown_address: not an organization's deposit address", null),
      row("dust", "rejected", "below_dust_minimum: less than 10 base units", org!.id),
      row("foreign", "rejected", "wrong_token: not the configured HUSD contract", org!.id),
      row("pending", "seen", null, org!.id),
    ])}`;
    await db.sql.unsafe(
      await readFile(new URL("../../src/db/migrations/0019_husd_limits.sql", import.meta.url), "utf8"),
    );
    const left = await db.sql<{ id: string }[]>`select id from husd_deposits order by id`;
    expect(left.map((r) => r.id)).toEqual(["dust", "foreign", "pending"]);
  });
});
