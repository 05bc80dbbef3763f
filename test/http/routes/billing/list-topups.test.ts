import { describe, expect } from "vitest";
import { cardTest as it, requestTopup, TOPUP_PATH, topupBody } from "../../../support/fake-processor.js";

/** GET /v1/billing/topups: card and HUSD top-ups, newest first, cursor-paged, with status. */
describe("list top-ups", () => {
  it("newest first, paged, each with its status as the webhooks left it", async ({ app, processor, clock, db }) => {
    const org = await app.createOrg();
    const made: string[] = [];
    for (const amount of ["5.00", "6.00", "7.00", "8.00", "9.00"]) {
      clock.advance(1000);
      const res = await requestTopup(app, org.orgKey, topupBody({ amount }));
      expect(res.status).toBe(201);
      made.push(res.json.id);
    }
    const sessionOf = async (id: string) =>
      (await db.sql<{ session_id: string }[]>`select session_id from card_checkouts where id = ${id}`)[0]
        ?.session_id as string;
    // 5.00 paid then refunded, 6.00 paid then disputed, 7.00 paid, 8.00 expired, 9.00 pending.
    const paid = [];
    for (const i of [0, 1, 2]) paid.push(processor.completeCheckout(await sessionOf(made[i] as string)));
    await processor.idle();
    processor.refund(paid[0]?.payment_intent as string);
    processor.dispute(paid[1]?.payment_intent as string);
    processor.expireCheckout(await sessionOf(made[3] as string));
    await processor.idle();
    // An HUSD deposit, newest of all.
    clock.advance(1000);
    await db.sql`
      insert into husd_deposits (id, chain_id, tx_hash, log_index, token_address, from_address, to_address, amount, org_id, state,
                                 source, seen_at, updated_at)
      values ('dep_listtest1', 36963, ${`0x${"ab".repeat(32)}`}, 0, ${`0x${"11".repeat(20)}`}, ${`0x${"33".repeat(20)}`},
              ${`0x${"22".repeat(20)}`}, 1000000000000000000, ${org.id}, 'seen', 'topup', ${clock()}, ${clock()})`;

    const first = await app.call("GET", `${TOPUP_PATH}?limit=4`, { key: org.orgKey });
    expect(first.status, first.text).toBe(200);
    expect(first.json.has_more).toBe(true);
    const second = await app.call("GET", `${TOPUP_PATH}?limit=4&cursor=${first.json.next_cursor}`, { key: org.orgKey });
    expect(second.json.has_more).toBe(false);
    expect(second.json.next_cursor).toBeNull();
    const all = [...first.json.data, ...second.json.data];
    expect(all.map((t: { id: string; method: string; status: string }) => [t.id, t.method, t.status])).toEqual([
      ["dep_listtest1", "husd", "seen"],
      [made[4], "card", "pending"],
      [made[3], "card", "failed"],
      [made[2], "card", "succeeded"],
      [made[1], "card", "disputed"],
      [made[0], "card", "refunded"],
    ]);
    expect(all[1]).toMatchObject({ amount: 9, amount_usd: "9", amount_nano_usd: "9000000000" });
    // Another org sees none of it.
    const other = await app.createOrg("Other");
    expect((await app.call("GET", TOPUP_PATH, { key: other.orgKey })).json.data).toEqual([]);
  });

  it.for(["nonsense", Buffer.from("t:2026-01-01T00:00:00.000000Z|x' or 1=1").toString("base64url"), "x".repeat(300)])(
    "400 for a cursor it did not make (%s)",
    async (cursor, { app }) => {
      const org = await app.createOrg();
      const res = await app.call("GET", `${TOPUP_PATH}?cursor=${encodeURIComponent(cursor)}`, { key: org.orgKey });
      expect(res.status).toBe(400);
      expect(res.json.error.code).toBe("invalid_request");
    },
  );
});
