import type { Logger } from "pino";
import type { Sql } from "../db/client.js";
import { BillingError } from "../errors.js";
import { Catalog } from "./catalog.js";
import { GroupCommitter } from "./group-commit.js";
import { authorizeBatch, type AuthorizeRequest, type Hold } from "./holds.js";
import { recordUsageBatch, type LowBalanceCrossing, type UsageRequest, type UsageResult } from "./usage.js";

export type AuthorizeInput = Omit<AuthorizeRequest, "amount" | "catalogVersion">;
export type UsageInput = Omit<UsageRequest, "cost" | "catalogVersion">;

/** Events may carry their own timestamp; one from the future (beyond clock skew) is refused. */
const MAX_CLOCK_SKEW_MS = 5 * 60 * 1000;

/**
 * The hot path: prices requests from the in-memory catalog, then hands them to group
 * committers so that many requests share one PostgreSQL transaction. Stateless beyond the
 * immutable catalog cache: any number of replicas can run side by side.
 */
export class Metering {
  readonly catalog: Catalog;
  private readonly authorizers: GroupCommitter<{ req: AuthorizeRequest; now: Date }, Hold>[];
  private readonly recorders: GroupCommitter<{ req: UsageRequest; now: Date }, UsageResult>[];

  constructor(
    private readonly sql: Sql,
    private readonly opts: { onCrossings?: (c: LowBalanceCrossing[]) => Promise<void>; logger?: Logger; maxBatch?: number; lanes?: number } = {},
  ) {
    this.catalog = new Catalog(sql);
    // Organizations are split over lanes by a hash of their id; each lane writes one batch at a
    // time. Batches of different lanes lock disjoint organizations, so they run truly in
    // parallel instead of queueing behind each other's row locks.
    const lanes = opts.lanes ?? 4;
    const batching = { maxBatch: opts.maxBatch ?? 500, maxInFlight: 1 };
    this.authorizers = Array.from({ length: lanes }, () =>
      new GroupCommitter<{ req: AuthorizeRequest; now: Date }, Hold>(
        (items) => authorizeBatch(sql, items.map((i) => i.req), latest(items.map((i) => i.now))),
        batching,
      ),
    );
    this.recorders = Array.from({ length: lanes }, () =>
      new GroupCommitter<{ req: UsageRequest; now: Date }, UsageResult>(async (items) => {
        const { outcomes, crossings } = await recordUsageBatch(sql, items.map((i) => i.req), latest(items.map((i) => i.now)));
        if (crossings.length > 0 && this.opts.onCrossings) {
          // After commit. If this fails the alert rows are still in PostgreSQL and the sweeper sends them.
          this.opts.onCrossings(crossings).catch((err) => this.opts.logger?.warn({ err }, "could not enqueue low-balance alerts; the sweeper will"));
        }
        return outcomes;
      }, batching),
    );
  }

  private lane(orgId: string): number {
    let h = 0;
    for (let i = 0; i < orgId.length; i++) h = (h * 31 + orgId.charCodeAt(i)) | 0;
    return Math.abs(h) % this.authorizers.length;
  }

  async ready(): Promise<void> {
    await this.catalog.refresh();
  }

  async authorize(input: AuthorizeInput, now: Date): Promise<Hold> {
    await this.ensureCatalog();
    const price = this.catalog.price(now, input.product, input.model, input.estimate);
    return this.authorizers[this.lane(input.orgId)]!.submit({ req: { ...input, amount: price.cost, catalogVersion: price.version }, now });
  }

  /** Prices and records one event; rejects (throws) only for this event. */
  async recordUsage(input: UsageInput, now: Date): Promise<UsageResult> {
    await this.ensureCatalog();
    if (input.occurredAt.getTime() > now.getTime() + MAX_CLOCK_SKEW_MS) {
      throw new BillingError("invalid_request", "timestamp is in the future", { details: { param: "timestamp" } });
    }
    const price = this.catalog.price(input.occurredAt, input.product, input.model, input.quantities);
    return this.recorders[this.lane(input.orgId)]!.submit({ req: { ...input, cost: price.cost, catalogVersion: price.version }, now });
  }

  private async ensureCatalog() {
    if (this.catalog.isEmpty) await this.catalog.refresh();
    if (this.catalog.isEmpty) throw new BillingError("not_configured", "no pricing catalog is loaded; run npm run catalog:load");
  }
}

function latest(dates: Date[]): Date {
  return dates.reduce((a, b) => (a > b ? a : b));
}
