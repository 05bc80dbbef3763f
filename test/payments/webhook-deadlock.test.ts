import { expect } from "vitest";
import type { FakeEvent } from "../../dev/processor/server.js";
import { cardTest as it, requestTopup, topupBody } from "../support/fake-processor.js";
import { expectLedgerConsistent } from "../support/ledger.js";
import { advisoryWaiters, waitFor } from "../support/lock-waits.js";

/**
 * Events of one payment lock its ids in sorted order, but a refund another event kept while the
 * checkout's event waited names the charge, which the checkout's event had not locked: applying it
 * then waited for charge.succeeded, which held the charge and waited for the payment. PostgreSQL
 * broke the deadlock by failing one delivery with a 500; it is now run again
 * (src/db/deadlock-retry.ts). The first test holds `card-payment:<pi>` for a moment (as a slow
 * transaction of ours would) only to queue the real, signed deliveries in that order; it writes
 * nothing. The second sends the processor's own events together, as it may.
 */

it.scoped({ dbOptions: { max: 12 } });

it("checkout.session.completed + early charge.refunded + charge.succeeded, concurrently: every delivery is 200 (no deadlock)", {
  timeout: 60_000,
}, async ({ app, processor, db }) => {
  const org = await app.createOrg();
  const res = await requestTopup(app, org.orgKey, topupBody({ amount: "25.00" }));
  await processor.idle();
  const [row] = await db.sql<{ session_id: string }[]>`select session_id from card_checkouts where id = ${res.json.id}`;
  processor.setWebhookMode("hold");
  const statuses: Record<string, number | string> = {};
  try {
    const session = processor.completeCheckout(row?.session_id as string);
    const pi = session.payment_intent as string;
    processor.refund(pi, 1000); // charge.refunded naming the charge and the payment (amount_refunded 1000)
    const held = processor.held();
    processor.discard();
    const byType = (t: string) => held.find((e) => e.type === t) as FakeEvent;
    const refunded = byType("charge.refunded");
    const completed = byType("checkout.session.completed");
    const chargeOk = byType("charge.succeeded");
    const paid = byType("payment_intent.succeeded");

    const base = await advisoryWaiters(db.sql);
    let release!: () => void;
    const released = new Promise<void>((r) => {
      release = r;
    });
    // Hold the payment's lock for a moment (scheduling only).
    const holder = db.sql.begin(async (tx) => {
      await tx`select pg_advisory_xact_lock(hashtextextended(${`card-payment:${pi}`}, 0))`;
      await released;
    });
    await waitFor(async () => {
      const [r] = await db.sql<{ n: number }[]>`
        select count(*)::int as n from pg_locks where locktype = 'advisory' and granted`;
      return (r?.n ?? 0) >= 1;
    }, "the holder");
    // 1. The refund: locks the charge, waits for the payment.
    const p0 = processor.deliver(refunded).then((s) => {
      statuses["charge.refunded"] = s;
    });
    await waitFor(async () => (await advisoryWaiters(db.sql)) >= base + 1, "refund waiting");
    // 2. The session's completion: read the kept reversals (none yet), waits for the payment.
    const p1 = processor.deliver(completed).then((s) => {
      statuses["checkout.session.completed"] = s;
    });
    await waitFor(async () => (await advisoryWaiters(db.sql)) >= base + 2, "session waiting");
    // 3. charge.succeeded: waits for the charge (held by the refund).
    const p3 = processor.deliver(chargeOk).then((s) => {
      statuses["charge.succeeded"] = s;
    });
    await waitFor(async () => (await advisoryWaiters(db.sql)) >= base + 3, "charge.succeeded waiting");
    release();
    await holder;
    await Promise.all([p0, p1, p3]);
    // The processor would retry whatever failed; deliver the payment's own event too.
    statuses["payment_intent.succeeded"] = await processor.deliver(paid);
  } finally {
    processor.setWebhookMode("auto");
  }
  expect(statuses).toEqual({
    "charge.refunded": 200,
    "checkout.session.completed": 200,
    "charge.succeeded": 200,
    "payment_intent.succeeded": 200,
  });
  expect(await app.balanceNano(org.orgKey)).toBe(15_000_000_000n);
  await expectLedgerConsistent(db.sql);
});

it("no scheduling help: the processor's own checkout.session.completed, payment_intent.succeeded and charge.refunded delivered together are all 200", {
  timeout: 180_000,
}, async ({ app, processor, db }) => {
  const org = await app.createOrg("Natural");
  const rounds = 6;
  const statuses: string[] = [];
  let expected = 0n;
  for (let i = 0; i < rounds; i++) {
    const res = await requestTopup(app, org.orgKey, topupBody({ amount: "10.00" }));
    await processor.idle();
    const [row] = await db.sql<
      { session_id: string }[]
    >`select session_id from card_checkouts where id = ${res.json.id}`;
    processor.setWebhookMode("hold");
    try {
      const session = processor.completeCheckout(row?.session_id as string);
      processor.refund(session.payment_intent as string, 400); // refunded at once: $4.00 of $10.00
      const held = processor.held();
      processor.discard();
      const pick = (t: string) => held.find((e) => e.type === t) as FakeEvent;
      // The refund is sent a moment before the payment's two events (as the processor may).
      const refund = processor.deliver(pick("charge.refunded"));
      await new Promise((r) => setTimeout(r, 3));
      const rest = [pick("checkout.session.completed"), pick("payment_intent.succeeded")].map((e) =>
        processor.deliver(e),
      );
      const all = await Promise.all([refund, ...rest]);
      all.forEach((s, k) => {
        statuses.push(`${i}:${["charge.refunded", "checkout.session.completed", "payment_intent.succeeded"][k]}=${s}`);
      });
      // what failed, the processor retries
      for (const [k, s] of all.entries()) {
        if (s !== 200) {
          const e = [pick("charge.refunded"), pick("checkout.session.completed"), pick("payment_intent.succeeded")][
            k
          ] as FakeEvent;
          expect(await processor.deliver(e)).toBe(200);
        }
      }
      await processor.release();
    } finally {
      processor.setWebhookMode("auto");
    }
    expected += 6_000_000_000n;
  }
  const failures = statuses.filter((s) => !s.endsWith("=200"));
  expect(await app.balanceNano(org.orgKey)).toBe(expected);
  await expectLedgerConsistent(db.sql);
  expect(failures).toEqual([]);
});
