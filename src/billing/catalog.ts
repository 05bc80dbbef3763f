import { readFile } from "node:fs/promises";
import type { Logger } from "pino";
import { z } from "zod";
import type { Sql } from "../db/client.js";
import { BillingError } from "../errors.js";
import { divideHalfEven, NANO_PER_USD, parseDecimal } from "../ledger/money.js";

const Rate = z.string().regex(/^\d+(\.\d{1,18})?$/, "a rate is a non-negative decimal string");
const Meter = z.string().regex(/^[a-z][a-z0-9_]{0,40}$/);

const ProductFile = z.object({
  name: z.string(),
  unit: z.string(),
  meters: z.array(Meter).min(1),
  models: z.record(z.string().regex(/^[a-z0-9][a-z0-9._-]{0,80}$/), z.record(Meter, Rate)).optional(),
  rates: z.record(Meter, Rate).optional(),
});
const VersionFile = z.object({
  version: z.string().min(1).max(40),
  effective_at: z.iso.datetime({ offset: true }),
  products: z.record(z.string().regex(/^[a-z][a-z0-9_]{0,40}$/), ProductFile),
  plans: z.array(
    z.object({ id: z.string(), name: z.string(), monthly_price: z.string(), included_credits: z.string() }),
  ),
});
export const CatalogFile = z.object({ versions: z.array(VersionFile).min(1) });
export type CatalogFile = z.infer<typeof CatalogFile>;
export type CatalogVersionFile = z.infer<typeof VersionFile>;

export const DEFAULT_CATALOG_PATH = new URL("../../catalog/pricing.json", import.meta.url);

export async function readCatalogFile(path: string | URL = DEFAULT_CATALOG_PATH): Promise<CatalogFile> {
  return CatalogFile.parse(JSON.parse(await readFile(path, "utf8")));
}

/**
 * How long before its effective time a new version must be loaded so that every replica prices
 * with it exactly from that time on, whatever happened to its notification (see Catalog).
 * `npm run catalog:load` refuses shorter notice unless told otherwise.
 */
export const CATALOG_NOTICE_MS = 60_000;
/**
 * What a replica takes off the notice: the load checks its notice in its last statement, one
 * round trip before it commits, so a replica may read the catalog just before that commit.
 */
const NOTICE_SLACK_MS = 10_000;
/** Every loaded version is announced on this channel when its transaction commits. */
export const CATALOG_CHANNEL = "catalog_versions";

export type Price = { version: string; cost: bigint };
/** A meter's rate, also as an exact decimal (parsed once, when the version is loaded). */
type MeterRate = { rate: string; units: bigint; scale: number };
type VersionIndex = {
  version: string;
  effectiveAt: Date;
  document: CatalogVersionFile;
  rates: Map<string, Map<string, MeterRate>>;
};

const POWERS_OF_TEN: bigint[] = Array.from({ length: 40 }, (_, i) => 10n ** BigInt(i));
const pow10 = (n: number) => POWERS_OF_TEN[n] ?? 10n ** BigInt(n);

/**
 * The loaded catalog in memory. Versions never change once loaded, so a process may keep them;
 * `refresh` only adds versions published since.
 *
 * Every replica must price an event with the version in force at the event's time, including a
 * version loaded after the replica started. The rule that makes it exact, without a round trip
 * on the hot path: a version is loaded at least CATALOG_NOTICE_MS before it takes effect (the
 * CLI refuses less), so a version this process has not seen yet was committed after its last
 * read and takes effect after `completeThrough` (that read's time plus the notice, less slack).
 * Events at or before `completeThrough` are priced from memory; for a later one (a timestamp
 * far ahead, or no read for most of a minute) Metering reads the catalog again first. Promptness
 * is separate (`watch`): a NOTIFY at each load's commit, a read on every (re)connection of the
 * LISTEN connection (notices sent while it was down are lost) and a cheap check every second.
 * They keep `completeThrough` ahead of the clock, so the hot path never waits, and bring a
 * version loaded at short notice to every replica within a second even with LISTEN down.
 */
export class Catalog {
  private versions: VersionIndex[] = []; // ascending effective_at
  /** Every version in force at or before this instant (ms since the epoch) is in `versions`. */
  private completeThrough = -Infinity;
  private reading: Promise<void> | null = null;
  private queued: Promise<void> | null = null;

  constructor(private readonly sql: Sql) {}

  /**
   * Resolves once a read of the catalog that started after this call has finished. Concurrent
   * callers share one read (and the one queued behind a read in progress).
   */
  refresh(): Promise<void> {
    if (this.queued) return this.queued;
    if (!this.reading) return this.startRead();
    const next = () => this.startRead();
    this.queued = this.reading.then(next, next);
    return this.queued;
  }

  private startRead(): Promise<void> {
    this.queued = null;
    const read: Promise<void> = this.read().finally(() => {
      if (this.reading === read) this.reading = null;
    });
    this.reading = read;
    return read;
  }

  private async read(): Promise<void> {
    // now() is the statement's start, before its snapshot: whatever this read misses commits later.
    const [head] = await this.sql<
      { at: Date; n: number }[]
    >`select now() as at, count(*)::int as n from catalog_versions`;
    if (!head) throw new Error("catalog refresh: the catalog_versions count query returned no row");
    if (head.n !== this.versions.length) {
      // Versions are never deleted, so a new count means new versions.
      const rows = await this.sql<{ version: string; effective_at: Date; document: CatalogVersionFile }[]>`
        select version, effective_at, document from catalog_versions order by effective_at`;
      const rates = await this.sql<{ version: string; product: string; model: string; meter: string; rate: string }[]>`
        select version, product, model, meter, rate::text from catalog_rates`;
      this.versions = rows.map((r) => {
        const map = new Map<string, Map<string, MeterRate>>();
        for (const rate of rates.filter((x) => x.version === r.version)) {
          const key = `${rate.product}/${rate.model}`;
          let meters = map.get(key);
          if (!meters) {
            meters = new Map();
            map.set(key, meters);
          }
          meters.set(rate.meter, { rate: rate.rate, ...parseDecimal(rate.rate) });
        }
        return { version: r.version, effectiveAt: r.effective_at, document: r.document, rates: map };
      });
    }
    this.completeThrough = Math.max(this.completeThrough, head.at.getTime() + CATALOG_NOTICE_MS - NOTICE_SLACK_MS);
  }

  /** True when every version that can apply at `at` is known here: price from memory. */
  covers(at: Date): boolean {
    return this.versions.length > 0 && at.getTime() <= this.completeThrough;
  }

  /**
   * Keeps this process's catalog current until the returned function is called: LISTEN for
   * loads, a read on every (re)connection of the listener, and a cheap check every `everyMs`.
   */
  async watch(opts: { everyMs?: number; logger?: Logger } = {}): Promise<() => Promise<void>> {
    let failing = false;
    const check = () =>
      this.refresh().then(
        () => {
          if (failing) opts.logger?.info("pricing catalog readable again");
          failing = false;
        },
        (err: unknown) => {
          if (!failing)
            opts.logger?.warn(
              { err },
              "could not read the pricing catalog; events after the last read's notice wait for a read",
            );
          failing = true;
        },
      );
    const listener = await this.sql.listen(
      CATALOG_CHANNEL,
      () => void check(),
      () => void check(),
    );
    const timer = setInterval(() => void check(), opts.everyMs ?? 1_000);
    timer.unref();
    return async () => {
      clearInterval(timer);
      await listener.unlisten();
    };
  }

  get isEmpty(): boolean {
    return this.versions.length === 0;
  }

  versionAt(at: Date): VersionIndex {
    let found: VersionIndex | undefined;
    for (const v of this.versions) if (v.effectiveAt <= at) found = v;
    if (!found) throw new BillingError("unknown_product", `no pricing catalog was in force at ${at.toISOString()}`);
    return found;
  }

  /** Every version, oldest first, for the public pricing endpoints. */
  allVersions(): readonly VersionIndex[] {
    return this.versions;
  }

  /**
   * Prices quantities of one product (and model) at the version in force at `at`. The exact
   * products of every meter are summed first and rounded once, half to even, to nano-USD.
   * `field` names the quantities in a refusal's `param` (an authorization's are its `estimate`).
   */
  price(
    at: Date,
    product: string,
    model: string | undefined,
    quantities: Record<string, bigint>,
    field: "quantities" | "estimate" = "quantities",
  ): Price {
    const version = this.versionAt(at);
    const productDoc = version.document.products[product];
    if (!productDoc)
      throw new BillingError("unknown_product", `unknown product "${product}"; see GET /v1/pricing/models`, {
        details: { param: "product" },
      });
    if (productDoc.models && !model)
      throw new BillingError("unknown_model", `product "${product}" needs a model`, { details: { param: "model" } });
    if (!productDoc.models && model)
      throw new BillingError("unknown_model", `product "${product}" is not priced per model; omit model`, {
        details: { param: "model" },
      });
    const rates = version.rates.get(`${product}/${model ?? ""}`);
    if (!rates)
      throw new BillingError("unknown_model", `unknown model "${model}" for product "${product}"`, {
        details: { param: "model" },
      });
    // Sum quantity × rate exactly over a common power of ten, then round once.
    let scale = 0;
    for (const meter in quantities) {
      const rate = rates.get(meter);
      if (!rate) {
        throw new BillingError(
          "invalid_request",
          `product "${product}" has no meter "${meter}"; meters: ${productDoc.meters.join(", ")}`,
          {
            details: { param: `${field}.${meter}` },
          },
        );
      }
      if (rate.scale > scale) scale = rate.scale;
    }
    let exact = 0n; // USD × 10^scale
    for (const meter in quantities) {
      const rate = rates.get(meter);
      const quantity = quantities[meter];
      if (!rate || quantity === undefined) throw new Error(`catalog has no rate for meter ${meter}`);
      exact += quantity * rate.units * pow10(scale - rate.scale);
    }
    const cost = divideHalfEven(exact * NANO_PER_USD, pow10(scale));
    return { version: version.version, cost };
  }
}
