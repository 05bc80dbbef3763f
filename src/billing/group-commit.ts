import type { Sql, TransactionSql } from "../db/client.js";

/**
 * Group commit: callers submit one item each; items that arrive while a batch is being written
 * are written together in the next one. One PostgreSQL transaction (one fsync) then serves many
 * requests, which is what lifts throughput past the ~3,000 commits/s a single connection can
 * do here, while a lone request still goes out at once (no timer, no added latency when idle).
 */
export type BatchOutcome<O> = O | Error;

/** Whoever waits for some items: their outcomes in submission order, delivered when all are settled. */
type Waiter<O> = { outcomes: BatchOutcome<O>[]; remaining: number; done: (outcomes: BatchOutcome<O>[]) => void };

export class GroupCommitter<I, O> {
  private pending: { item: I; waiter: Waiter<O>; slot: number }[] = [];
  private inFlight = 0;
  private scheduled = false;

  constructor(
    /**
     * Writes a batch. `again`: these items were in a batch whose write failed, so it may have
     * committed with its answer lost (a connection that failed after the commit); the writer must
     * look for what that attempt wrote before deciding anything a second time.
     */
    private readonly writeBatch: (items: I[], again: boolean) => Promise<BatchOutcome<O>[]>,
    private readonly opts: { maxBatch: number; maxInFlight: number },
  ) {}

  submit(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      const done = ([outcome]: BatchOutcome<O>[]) =>
        outcome instanceof Error
          ? reject(outcome)
          : outcome === undefined
            ? reject(new Error("batch writer returned no outcome"))
            : resolve(outcome);
      this.pending.push({ item, waiter: { outcomes: [new Error("unsettled")], remaining: 1, done }, slot: 0 });
      this.schedule();
    });
  }

  /**
   * Many items with one promise (a usage report of many events): they may be written in
   * different batches; the promise resolves with every item's outcome once all are settled.
   */
  submitMany(items: I[]): Promise<BatchOutcome<O>[]> {
    if (items.length === 0) return Promise.resolve([]);
    return new Promise((done) => {
      const waiter: Waiter<O> = { outcomes: new Array<BatchOutcome<O>>(items.length), remaining: items.length, done };
      for (let slot = 0; slot < items.length; slot++)
        this.pending.push({ item: at(items, slot, "item"), waiter, slot });
      this.schedule();
    });
  }

  private schedule() {
    if (this.scheduled) return;
    this.scheduled = true;
    // Let every request already parsed in this turn of the event loop join the batch.
    setImmediate(() => {
      this.scheduled = false;
      this.drain();
    });
  }

  private drain(): void {
    while (this.inFlight < this.opts.maxInFlight && this.pending.length > 0) {
      const batch = this.pending.splice(0, this.opts.maxBatch);
      this.inFlight++;
      this.writeBatch(
        batch.map((b) => b.item),
        false,
      )
        .then(
          (outcomes): unknown => {
            for (const [i, b] of batch.entries())
              settle(b, outcomes[i] ?? new Error("batch writer returned no outcome for an item"));
            return undefined;
          },
          // A batch carries requests of many callers (and organizations): one item the database
          // refuses must not fail the others, so each is written again on its own, one after the
          // other in the batch's order. In parallel, a later request could be decided before an
          // earlier one it depends on (a key's second use answered as a first use: 402 instead of
          // 409 idempotency_key_reused). A batch of one is written again too: the failure may be
          // a lost answer to a write that committed, which only the second attempt (`again`) can
          // find and answer.
          (): unknown => this.writeEachInOrder(batch),
        )
        .finally(() => {
          this.inFlight--;
          this.drain();
        });
    }
  }

  private async writeEachInOrder(batch: { item: I; waiter: Waiter<O>; slot: number }[]): Promise<void> {
    for (const b of batch) {
      try {
        const [outcome] = await this.writeBatch([b.item], true);
        settle(b, outcome ?? new Error("batch writer returned no outcome for an item"));
      } catch (e) {
        settle(b, asError(e));
      }
    }
  }
}

function asError(err: unknown): Error {
  return err instanceof Error ? err : new Error(String(err));
}

function settle<O>(entry: { waiter: Waiter<O>; slot: number }, outcome: BatchOutcome<O>) {
  const w = entry.waiter;
  w.outcomes[entry.slot] = outcome;
  if (--w.remaining === 0) w.done(w.outcomes);
}

/*
 * Batches go to PostgreSQL as three JSON arrays (organizations, usage events, authorizations),
 * each element shaped as a composite type of src/db/functions/metering.sql: one fixed
 * statement, prepared once per connection, whatever the batch size. Indexes are 1-based, as
 * PostgreSQL arrays are.
 */

/** list[k], or a clear error naming what was missing: a batch's parallel arrays must line up. */
export function at<T>(list: readonly T[], k: number, what: string): T {
  const value = list[k];
  if (value === undefined) throw new Error(`batch has no ${what} for item ${k}`);
  return value;
}

/** The batch's distinct organizations (sorted), and each item's index into them. */
export function batchOrgs(orgIds: string[]): { orgs: string[]; index: number[] } {
  const orgs = [...new Set(orgIds)].sort();
  const position = new Map(orgs.map((o, i) => [o, i + 1]));
  return {
    orgs,
    index: orgIds.map((o) => {
      const i = position.get(o);
      if (i === undefined) throw new Error(`batch has no index for organization ${o}`);
      return i;
    }),
  };
}

/** For each item with a key: the previous item of the batch with the same organization and key. */
export function previousWithSameKey(keys: (string | undefined)[], orgIndex: number[]): (number | null)[] {
  const last = new Map<string, number>();
  return keys.map((key, k) => {
    if (key === undefined) return null;
    const id = `${orgIndex[k]}\u0000${key}`;
    const previous = last.get(id);
    last.set(id, k + 1);
    return previous ?? null;
  });
}

/** For each item naming a value (e.g. a hold id): the first item of the batch naming the same one. */
export function firstWithSameValue(values: (string | undefined)[]): (number | null)[] {
  const first = new Map<string, number>();
  return values.map((value, k) => {
    if (value === undefined) return null;
    const seen = first.get(value);
    if (seen !== undefined) return seen;
    first.set(value, k + 1);
    return k + 1;
  });
}

/** Meter quantities for a jsonb column, counts as strings (they are bigints). */
export function countsObject(counts: Record<string, bigint>): Record<string, string> {
  const out: Record<string, string> = {};
  for (const [meter, count] of Object.entries(counts)) out[meter] = count.toString();
  return out;
}

/** An organization of a batch (metering_org): the ids of what may be written for it, or null. */
export type BatchOrg = {
  org_id: string;
  /** The batch's 'usage' transaction, the same id for every organization with usage (metering_post). */
  usage_txn: string | null;
  alert_id: string | null;
};
/** A usage event of a batch (metering_usage); `org`, `prev` and `hold_first` are 1-based indexes. */
export type BatchUsage = {
  org: number;
  id: string;
  key: string;
  prev: number | null;
  occurred_at: string;
  product: string;
  model: string;
  quantities: Record<string, string>;
  cost: string;
  catalog_version: string;
  hold_id: string | null;
  hold_first: number | null;
  /** Left out (null in SQL) when the event names none: the hot path's JSON stays as small as before. */
  api_key_id?: string;
  project?: string;
};
/** An authorization of a batch (metering_authorization). */
export type BatchAuthorization = {
  org: number;
  hold_id: string;
  amount: string;
  key: string | null;
  prev: number | null;
  product: string;
  model: string;
  estimate: Record<string, string>;
  catalog_version: string;
  ttl_seconds: number;
  api_key_id?: string;
  project?: string;
  /** Written again after a failed write, without a key: look for its hold by id first (metering_decide). */
  recheck?: true;
};
export type BatchAnswer = {
  usage_outcomes: string[] | null;
  usage_duplicates: unknown[] | null;
  usage_alerts: unknown[] | null;
  authorize_outcomes: string[] | null;
  authorize_details: unknown[] | null;
  expired_holds: number;
};

/**
 * One call of metering_batch (src/db/functions/metering.sql): a batch's usage events and
 * authorizations as one statement, outside any explicit transaction, so PostgreSQL runs it as
 * one transaction and answers after its durable commit. With neither it sweeps the
 * organizations' expired holds.
 */
export async function callMeteringBatch(
  sql: Sql | TransactionSql,
  now: Date,
  orgs: BatchOrg[],
  usage: BatchUsage[],
  authorizations: BatchAuthorization[],
): Promise<BatchAnswer> {
  const [res] = await sql<BatchAnswer[]>`
    select * from metering_batch(${now}::timestamptz, ${JSON.stringify(orgs)}::text::jsonb, ${JSON.stringify(usage)}::text::jsonb, ${JSON.stringify(authorizations)}::text::jsonb)`;
  if (!res) throw new Error("metering_batch returned no row");
  return res;
}
