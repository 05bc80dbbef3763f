import { describe, expect } from "vitest";
import { createBillingContext } from "../../src/billing/context.js";
import { emitEvent } from "../../src/billing/events/emit.js";
import { grantCredits } from "../../src/billing/grants.js";
import { EVENT_DATA_SCHEMAS } from "../../src/http/routes/billing/event-schemas.js";
import type { TransactionSql } from "../../src/db/client.js";
import { manualClock, TEST_ADMIN_KEY, type TestApp } from "../support/app.js";
import { appTest as it } from "../support/fixtures.js";

// Events are written by the transaction that makes their fact (src/db/functions/events.sql,
// src/billing/events/emit.ts): one per fact, none for a fact that rolled back.
describe("events in the outbox, one per fact", () => {
  const clock = manualClock(new Date("2026-10-05T10:00:00Z"));
  it.scoped({ dbOptions: { max: 20 }, appOptions: { clock } });

  let n = 0;
  const spend = (app: TestApp, org: { id: string; gatewayKey: string }, requests: number) =>
    app.call("POST", "/v1/billing/usage", {
      key: org.gatewayKey,
      body: {
        events: [
          {
            idempotency_key: `ev-${++n}`,
            org_id: org.id,
            timestamp: clock().toISOString(),
            product: "api",
            quantities: { requests },
          },
        ],
      },
    });

  it("racing debits that cross the threshold and zero make one balance.low and one balance.depleted", async ({
    app,
    db,
  }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "10.50"); // threshold 10.00; api requests cost $0.0001
    // 16 debits of $1 at once: whatever the interleaving, one crossing of 10.00 and one of 0.
    const replies = await Promise.all(Array.from({ length: 16 }, () => spend(app, org, 10_000)));
    expect(replies.every((r) => r.status === 200)).toBe(true);
    const events = await db.sql<{ type: string; data: Record<string, string>; fact_key: string }[]>`
      select type, data, fact_key from billing_events where org_id = ${org.id} and type like 'balance.%' order by seq`;
    expect(events.map((e) => e.type)).toEqual(["balance.low", "balance.depleted"]);
    const [low, depleted] = events;
    expect(low?.data).toMatchObject({ threshold: 10, threshold_usd: "10", threshold_nano_usd: "10000000000" });
    // Debits that arrive together share a batch, so the balance at each crossing depends on the interleaving.
    expect(BigInt(low?.data.balance_nano_usd ?? "0")).toBeLessThan(10_000_000_000n);
    const depletedAt = BigInt(depleted?.data.balance_nano_usd ?? "1");
    expect(depletedAt <= 0n && depletedAt > -16_000_000_000n).toBe(true);
    expect(depleted?.data.balance).toBe(Number(depleted?.data.balance_usd));
    // The transaction named is the debit that crossed.
    const [txn] = await db.sql`select kind from ledger_transactions where id = ${depleted?.data.transaction_id ?? ""}`;
    expect(txn?.kind).toBe("usage");

    // Back above both, then down again: a second crossing of each is a second event of each.
    await app.grant(org.id, "20");
    await Promise.all(Array.from({ length: 4 }, () => spend(app, org, 100_000))); // 19.50 → -20.50
    const types = await db.sql<
      { type: string }[]
    >`select type from billing_events where org_id = ${org.id} and type like 'balance.%' order by seq`;
    // (Within one debit the zero crossing is written with its ledger entries, before the alert.)
    expect(types.map((e) => e.type).sort()).toEqual([
      "balance.depleted",
      "balance.depleted",
      "balance.low",
      "balance.low",
    ]);
  });

  it("an invoice's issue and payment are one event each", async ({ app, db }) => {
    clock.set(new Date("2026-10-05T10:00:00Z"));
    const org = await app.createOrg();
    const sub = await app.call("PUT", `/v1/admin/orgs/${org.id}/subscription`, {
      key: TEST_ADMIN_KEY,
      body: { plan_id: "pro" },
    });
    expect(sub.status).toBe(200);
    clock.set(new Date("2026-11-01T00:00:05Z"));
    const close = () => app.call("POST", "/v1/admin/cycles/close", { key: TEST_ADMIN_KEY, body: { org_id: org.id } });
    await Promise.all([close(), close()]);
    const [invoice] = await db.sql<
      { id: string; number: string }[]
    >`select id, number from invoices where org_id = ${org.id}`;
    if (!invoice) throw new Error("no invoice");
    const pay = () => app.call("POST", `/v1/admin/invoices/${invoice.id}/pay`, { key: TEST_ADMIN_KEY });
    const paid = await Promise.all([pay(), pay()]);
    expect(paid.map((r) => r.status).sort()).toEqual([200, 409]);
    const events = await db.sql<{ type: string; data: Record<string, unknown>; created_at: Date }[]>`
      select type, data, created_at from billing_events where org_id = ${org.id} and type like 'invoice.%' order by seq`;
    expect(events.map((e) => e.type)).toEqual(["invoice.issued", "invoice.paid"]);
    expect(events[0]?.data).toMatchObject({
      invoice_id: invoice.id,
      number: invoice.number,
      status: "open",
      period_start: "2026-10-01T00:00:00.000Z",
      period_end: "2026-11-01T00:00:00.000Z",
      currency: "USD",
    });
    expect(events[1]?.data).toMatchObject({ invoice_id: invoice.id, status: "paid" });
    expect(events[0]?.created_at).toEqual(new Date("2026-11-01T00:00:05Z"));
  });

  it("a deposit's appearance, credit, orphaning and reversal are one event each", async ({ app, db }) => {
    const org = await app.createOrg();
    const now = clock();
    const txn = `txn_dep_${++n}`;
    // The state machine's writes, as lifecycle.ts makes them (its triggers are what is under test).
    await db.sql.begin(async (tx) => {
      await tx`insert into husd_deposits (id, chain_id, tx_hash, ordinal, log_index, block_number, block_hash, token_address, from_address,
                 to_address, org_id, amount, amount_nano_usd, state, source, seen_at, updated_at)
               values ('dep_ev1', 36964, '0xabc', 0, 0, 10, '0xb1', '0xt', '0xf', '0xd', ${org.id}, '5000000000000000000', 5000000000,
                       'seen', 'indexer', ${now}, ${now})`;
    });
    await db.sql`update husd_deposits set state = 'confirming', updated_at = ${now} where id = 'dep_ev1'`;
    await db.sql.begin(async (tx) => {
      await tx`insert into ledger_transactions (id, org_id, kind, idempotency_key, created_at) values (${txn}, ${org.id}, 'husd_deposit', ${txn}, ${now})`;
      await tx`insert into ledger_entries (transaction_id, account_id, amount, created_at) values
                 (${txn}, 'system:husd', -5000000000, ${now}), (${txn}, ${`org:${org.id}:credits`}, 5000000000, ${now})`;
      await tx`update husd_deposits set state = 'credited', credit_count = 1, credit_transaction_id = ${txn}, credited_at = ${now},
                 updated_at = ${now} where id = 'dep_ev1'`;
    });
    // Found off the canonical chain: reversed (its k-th reversal).
    const rev = `txn_rev_${n}`;
    await db.sql.begin(async (tx) => {
      await tx`insert into ledger_transactions (id, org_id, kind, idempotency_key, created_at) values (${rev}, ${org.id}, 'reversal', ${rev}, ${now})`;
      await tx`insert into ledger_entries (transaction_id, account_id, amount, created_at) values
                 (${rev}, 'system:husd', 5000000000, ${now}), (${rev}, ${`org:${org.id}:credits`}, -5000000000, ${now})`;
      await tx`update husd_deposits set state = 'reversed', reason = 'reorged', reversal_count = 1, reversal_transaction_id = ${rev},
                 updated_at = ${now} where id = 'dep_ev1'`;
    });
    // Another one seen, then orphaned before it was final; seen again in another block.
    await db.sql`insert into husd_deposits (id, chain_id, tx_hash, ordinal, log_index, block_number, block_hash, token_address, from_address,
                   to_address, org_id, amount, amount_nano_usd, state, source, seen_at, updated_at)
                 values ('dep_ev3', 36964, '0x123', 0, 0, 11, '0xb2', '0xt', '0xf', '0xd', ${org.id}, '1000000000000000000', 1000000000,
                         'seen', 'indexer', ${now}, ${now})`;
    await db.sql`update husd_deposits set state = 'orphaned', reason = 'reorged', updated_at = ${now} where id = 'dep_ev3'`;
    await db.sql`update husd_deposits set state = 'orphaned', updated_at = ${now} where id = 'dep_ev3'`; // no change of state
    await db.sql`update husd_deposits set state = 'seen', reason = null, block_hash = '0xb3', updated_at = ${now} where id = 'dep_ev3'`;
    // A rejected transfer to no organization's address tells nobody.
    await db.sql`insert into husd_deposits (id, chain_id, tx_hash, ordinal, log_index, block_number, block_hash, token_address, from_address,
                   to_address, org_id, amount, state, reason, source, seen_at, updated_at)
                 values ('dep_ev2', 36964, '0xdef', 0, 0, 10, '0xb1', '0xt', '0xf', '0xe', null, 1, 'rejected', 'unknown_address: 0xe',
                         'indexer', ${now}, ${now})`;
    const events = await db.sql<{ type: string; data: Record<string, unknown> }[]>`
      select type, data from billing_events where org_id = ${org.id} and type like 'deposit.%' order by seq`;
    expect(events.map((e) => e.type)).toEqual([
      "deposit.seen",
      "deposit.credited",
      "deposit.reversed",
      "deposit.seen",
      "deposit.orphaned",
      "deposit.seen",
    ]);
    expect(events[2]?.data).toMatchObject({ deposit_id: "dep_ev1", state: "reversed", reason: "reorged" });
    // The reversal took the balance from 5 to 0: that is a depletion, told once.
    const [depleted] =
      await db.sql`select data from billing_events where org_id = ${org.id} and type = 'balance.depleted'`;
    expect(depleted?.data).toMatchObject({ balance: 0, transaction_id: rev });
    expect(events[1]?.data).toMatchObject({
      deposit_id: "dep_ev1",
      state: "credited",
      tx_hash: "0xabc",
      block_number: "10",
      amount_base_units: "5000000000000000000",
      amount: 5,
      amount_nano_usd: "5000000000",
    });
  });

  it("every credit grant tells credit.granted once, with its source, whatever path made it", async ({ app, db }) => {
    clock.set(new Date("2026-10-05T10:00:00Z"));
    const org = await app.createOrg();
    // An operator's grant, replayed and raced with its own key: one grant, one event.
    const grants = await Promise.all(
      Array.from({ length: 4 }, () => app.grant(org.id, "2.5", "op-grant-1", { expires_at: "2026-12-01T00:00:00Z" })),
    );
    expect(new Set(grants.map((g) => g.json.id)).size).toBe(1);
    // A plan's included credits (source plan).
    const sub = await app.call("PUT", `/v1/admin/orgs/${org.id}/subscription`, {
      key: TEST_ADMIN_KEY,
      body: { plan_id: "pro" },
    });
    expect(sub.status).toBe(200);
    // A promo grant as the promo path makes it, and one that rolls back: told only if it commits.
    const ctx = createBillingContext({ sql: db.appSql, clock });
    await db.appSql.begin((tx) =>
      grantCredits(
        { ...ctx, sql: tx },
        { orgId: org.id, amount: 7n, reason: "promo X", idempotencyKey: "promo-1", source: "promo", sourceId: "prr_1" },
      ),
    );
    await expect(
      db.appSql.begin(async (tx) => {
        await grantCredits(
          { ...ctx, sql: tx },
          {
            orgId: org.id,
            amount: 9n,
            reason: "promo Y",
            idempotencyKey: "promo-2",
            source: "promo",
            sourceId: "prr_2",
          },
        );
        throw new Error("the redemption failed");
      }),
    ).rejects.toThrow("the redemption failed");

    const events = await db.sql<{ fact_key: string; data: Record<string, unknown>; created_at: Date }[]>`
      select fact_key, data, created_at from billing_events where org_id = ${org.id} and type = 'credit.granted' order by seq`;
    const rows = await db.sql<{ id: string; source: string; transaction_id: string }[]>`
      select id, source, transaction_id from credit_grants where org_id = ${org.id} order by created_at, id`;
    expect(rows.map((r) => r.source).sort()).toEqual(["operator", "plan", "promo"]);
    expect(events.map((e) => e.fact_key).sort()).toEqual(rows.map((r) => r.id).sort());
    const byId = new Map(events.map((e) => [e.fact_key, e.data]));
    const op = rows.find((r) => r.source === "operator");
    expect(byId.get(op?.id ?? "")).toEqual({
      grant_id: op?.id,
      source: "operator",
      source_id: null,
      reason: "test grant",
      amount: 2.5,
      amount_usd: "2.5",
      amount_nano_usd: "2500000000",
      expires_at: "2026-12-01T00:00:00.000Z",
      transaction_id: op?.transaction_id,
    });
    const promo = rows.find((r) => r.source === "promo");
    expect(byId.get(promo?.id ?? "")).toMatchObject({ source: "promo", source_id: "prr_1", amount_nano_usd: "7" });
    expect(byId.get(rows.find((r) => r.source === "plan")?.id ?? "")).toMatchObject({ source: "plan" });
    // The payload is the published schema.
    for (const e of events) EVENT_DATA_SCHEMAS["credit.granted"].parse(e.data);
  });

  it("emitEvent: one event per fact key however many transactions race, none from a transaction that rolled back", async ({
    app,
    db,
  }) => {
    const org = await app.createOrg();
    const at = clock();
    const emit = (tx: TransactionSql, factKey: string) =>
      emitEvent(tx, { orgId: org.id, type: "test.ping", factKey, data: { webhook_id: "wh_x" }, at });
    const ids = await Promise.all(Array.from({ length: 12 }, () => db.appSql.begin((tx) => emit(tx, "fact-1"))));
    expect(ids.filter((id) => id !== null)).toHaveLength(1);
    expect(ids.find((id) => id !== null)).toMatch(/^evt_[0-9A-Za-z]{22}$/);

    await expect(
      db.appSql.begin(async (tx) => {
        await emit(tx, "fact-2");
        throw new Error("the fact failed");
      }),
    ).rejects.toThrow("the fact failed");
    const rows = await db.sql<{ fact_key: string }[]>`select fact_key from billing_events where org_id = ${org.id}`;
    expect(rows.map((r) => r.fact_key)).toEqual(["fact-1"]);
    // Events are facts too: the app cannot rewrite or remove them.
    await expect(db.appSql`update billing_events set data = '{}' where org_id = ${org.id}`).rejects.toThrow(
      /append-only/,
    );
    await expect(db.appSql`delete from billing_events where org_id = ${org.id}`).rejects.toThrow(/permission denied/);
  });

  it("the app's role cannot choose an event's seq: one given is replaced, and only the commit's numbering may change it", async ({
    app,
    db,
  }) => {
    const org = await app.createOrg();
    const [before] = await db.sql<{ max: string }[]>`select coalesce(max(seq), 0)::text as max from billing_events`;
    await db.appSql.begin(
      (tx) => tx`
        insert into billing_events (id, org_id, type, fact_key, data, created_at, seq)
        values ('evt_chosen_seq', ${org.id}, 'test.ping', 'chosen-seq', '{}', now(), 1)`,
    );
    const [chosen] = await db.sql<{ seq: string }[]>`select seq::text from billing_events where id = 'evt_chosen_seq'`;
    expect(BigInt(chosen?.seq ?? 0)).toBeGreaterThan(BigInt(before?.max ?? 0));
    // A provisional seq set to a number of the writer's choosing before the commit: refused.
    const moved = db.appSql.begin(async (tx) => {
      const [e] = await tx<{ id: string }[]>`select emit_event(${org.id}, 'test.ping', 'moved-seq', '{}', now()) as id`;
      await tx`update billing_events set seq = 2 where id = ${e?.id ?? ""}`;
    });
    await expect(moved).rejects.toMatchObject({ code: "P0001" });
  });
});
