import type { Sql } from "../db/client.js";

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
    private readonly writeBatch: (items: I[]) => Promise<BatchOutcome<O>[]>,
    private readonly opts: { maxBatch: number; maxInFlight: number },
  ) {}

  submit(item: I): Promise<O> {
    return new Promise<O>((resolve, reject) => {
      const done = ([outcome]: BatchOutcome<O>[]) => (outcome instanceof Error ? reject(outcome) : resolve(outcome!));
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
      for (let slot = 0; slot < items.length; slot++) this.pending.push({ item: items[slot]!, waiter, slot });
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
      this.writeBatch(batch.map((b) => b.item))
        .then(
          (outcomes): unknown => batch.forEach((b, i) => settle(b, outcomes[i] ?? new Error("batch writer returned no outcome for an item"))),
          (err: unknown): unknown => {
            if (batch.length === 1) return settle(batch[0]!, asError(err));
            // A batch carries requests of many callers (and organizations): one item the
            // database refuses must not fail the others, so each is written again on its own.
            return Promise.all(
              batch.map((b) =>
                this.writeBatch([b.item]).then(
                  ([outcome]) => settle(b, outcome ?? new Error("batch writer returned no outcome for an item")),
                  (e: unknown) => settle(b, asError(e)),
                ),
              ),
            );
          },
        )
        .finally(() => {
          this.inFlight--;
          this.drain();
        });
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
 * Batches go to PostgreSQL as parallel arrays (one element per request), which keeps each
 * batch one fixed statement: prepared once per connection, whatever the batch size. The
 * helpers below build and index them; indexes are 1-based, as PostgreSQL arrays are.
 */

const NEEDS_ESCAPE = /["\\]/;
const ESCAPED = /["\\]/g;

/**
 * A PostgreSQL array literal ('{"a","b",NULL}'), sent as one text parameter and cast in SQL
 * (`$1::text[]`, `::int8[]`). Every string element is quoted, so any text (empty, "NULL",
 * commas, braces) round-trips; only backslash and double quote need escaping. Built here in
 * one pass, where postgres.js's own array serializer runs a closure and two regex replacements
 * per element (a batch of a thousand events has a dozen such arrays).
 */
export function pgArray(values: readonly (string | number | bigint | null | undefined)[]): string {
  let out = "{";
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (i > 0) out += ",";
    if (v === null || v === undefined) out += "NULL";
    else if (typeof v !== "string") out += String(v);
    else if (NEEDS_ESCAPE.test(v)) out += `"${v.replace(ESCAPED, "\\$&")}"`;
    else out += `"${v}"`;
  }
  return `${out}}`;
}

/** The batch's distinct organizations (sorted), and each item's index into them. */
export function batchOrgs(orgIds: string[]): { orgs: string[]; index: number[] } {
  const orgs = [...new Set(orgIds)].sort();
  const position = new Map(orgs.map((o, i) => [o, i + 1]));
  return { orgs, index: orgIds.map((o) => position.get(o)!) };
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

/** Meter quantities as JSON for a jsonb column, counts as strings (they are bigints). */
export function countsJson(counts: Record<string, bigint>): string {
  let out = "{";
  for (const [meter, count] of Object.entries(counts)) out += `${out.length > 1 ? "," : ""}${JSON.stringify(meter)}:"${count}"`;
  return `${out}}`;
}

/** metering_batch's per-organization arguments (migration 0010), as array literals. */
export type BatchOrgParams = { orgs: string; usageTxns: string; releaseTxns: string; holdTxns: string; alertIds: string };
/** metering_batch's u_* arguments, as array literals (see prepareUsage in usage.ts). */
export type UsageParams = {
  orgIndex: string;
  usageIds: string;
  keys: string;
  previous: string;
  occurredAt: string;
  products: string;
  models: string;
  quantities: string;
  costs: string;
  versions: string;
  holdIds: string;
  holdFirst: string;
};
/** metering_batch's a_* arguments, as array literals (see prepareAuthorize in holds.ts). */
export type AuthorizeParams = {
  orgIndex: string;
  holdIds: string;
  amounts: string;
  keys: string | null;
  previous: string;
  products: string;
  models: string;
  estimates: string;
  versions: string;
  expiresAt: string;
};
export type BatchAnswer = {
  usage_outcomes: string[] | null;
  usage_duplicates: unknown[] | null;
  usage_alerts: unknown[] | null;
  authorize_outcomes: string[] | null;
  authorize_details: unknown[] | null;
  released_holds: number;
};

const NO_USAGE: UsageParams = {
  orgIndex: "{}",
  usageIds: "{}",
  keys: "{}",
  previous: "{}",
  occurredAt: "{}",
  products: "{}",
  models: "{}",
  quantities: "{}",
  costs: "{}",
  versions: "{}",
  holdIds: "{}",
  holdFirst: "{}",
};
const NO_AUTHORIZATIONS: AuthorizeParams = {
  orgIndex: "{}",
  holdIds: "{}",
  amounts: "{}",
  keys: null,
  previous: "{}",
  products: "{}",
  models: "{}",
  estimates: "{}",
  versions: "{}",
  expiresAt: "{}",
};

/**
 * One call of metering_batch (migration 0010): a batch's usage events and authorizations as one
 * statement, outside any explicit transaction, so PostgreSQL runs it as one transaction and
 * answers after its durable commit. Either part may be absent; with neither it sweeps the
 * organizations' expired holds.
 */
export async function callMeteringBatch(sql: Sql, now: Date, o: BatchOrgParams, usage: UsageParams | null, authorize: AuthorizeParams | null): Promise<BatchAnswer> {
  const u = usage ?? NO_USAGE;
  const a = authorize ?? NO_AUTHORIZATIONS;
  const [res] = await sql<BatchAnswer[]>`
    select * from metering_batch(
      ${now}::timestamptz, ${o.orgs}::text[], ${o.usageTxns}::text[], ${o.releaseTxns}::text[], ${o.holdTxns}::text[], ${o.alertIds}::text[],
      ${u.orgIndex}::int[], ${u.usageIds}::text[], ${u.keys}::text[], ${u.previous}::int[], ${u.occurredAt}::timestamptz[],
      ${u.products}::text[], ${u.models}::text[], ${u.quantities}::text[], ${u.costs}::int8[], ${u.versions}::text[],
      ${u.holdIds}::text[], ${u.holdFirst}::int[],
      ${a.orgIndex}::int[], ${a.holdIds}::text[], ${a.amounts}::int8[], ${a.keys}::text[], ${a.previous}::int[],
      ${a.products}::text[], ${a.models}::text[], ${a.estimates}::text[], ${a.versions}::text[], ${a.expiresAt}::timestamptz[])`;
  return res!;
}
