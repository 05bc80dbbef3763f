import type { Logger } from "pino";
import type { Sql } from "../db/client.js";
import { BillingError } from "../errors.js";
import { Catalog } from "./catalog.js";
import { type BillingContext, createBillingContext } from "./context.js";
import { grantOpenCycleCredits } from "./cycle-credits.js";
import { newId } from "../ids.js";
import { batchOrgs, callMeteringBatch, GroupCommitter, type BatchOrg, type BatchOutcome } from "./group-commit.js";
import {
  authorizeOutcomes,
  prepareAuthorize,
  type AuthorizeAnswer,
  type AuthorizeRequest,
  type Hold,
} from "./holds.js";
import {
  prepareUsage,
  usageOutcomes,
  type LowBalanceCrossing,
  type UsageAnswer,
  type UsageRequest,
  type UsageResult,
} from "./usage.js";

export type AuthorizeInput = Omit<AuthorizeRequest, "amount" | "catalogVersion" | "holdId">;
export type UsageInput = Omit<UsageRequest, "cost" | "catalogVersion">;

/** Events may carry their own timestamp; one from the future (beyond clock skew) is refused. */
const MAX_CLOCK_SKEW_MS = 5 * 60 * 1000;

/** One request may cost at most $1,000,000: anything above is a bug upstream, and sums of such costs could overflow bigint. */
export const MAX_REQUEST_COST_NANO_USD = 1_000_000n * 1_000_000_000n;

/** `field`: where the request's quantities are (an authorization's are its `estimate`). */
function boundedCost(cost: bigint, field: "quantities" | "estimate"): bigint {
  if (cost > MAX_REQUEST_COST_NANO_USD) {
    throw new BillingError("invalid_request", `this request would cost more than 1000000 USD; check the ${field}`, {
      details: { param: field },
    });
  }
  return cost;
}

type Item = { kind: "authorize"; req: AuthorizeRequest; now: Date } | { kind: "usage"; req: UsageRequest; now: Date };

/** Organizations whose cycle end is remembered (grantCycleCredits); past it the memory starts over. */
const MAX_REMEMBERED_CYCLES = 100_000;
/** An organization the database does not know is asked about again after this long. */
const UNKNOWN_ORG_RETRY_MS = 60_000;
/**
 * The hot path: prices requests from the in-memory catalog, then hands them to group
 * committers so that many requests share one PostgreSQL transaction. Stateless beyond the
 * immutable catalog cache: any number of replicas can run side by side.
 */
export class Metering {
  readonly catalog: Catalog;
  private readonly lanes: GroupCommitter<Item, Hold | UsageResult>[];
  private readonly ctx: BillingContext;
  /** Per organization, when its current cycle ends: until then its cycle's credits are known granted. */
  private readonly cycleEnds = new Map<string, number>();

  constructor(
    private readonly sql: Sql,
    private readonly opts: {
      onCrossings?: (c: LowBalanceCrossing[]) => Promise<void>;
      logger?: Logger;
      maxBatch?: number;
      lanes?: number;
      maxInFlight?: number;
    } = {},
  ) {
    this.catalog = new Catalog(sql);
    this.ctx = createBillingContext({ sql, catalog: this.catalog, ...(opts.logger ? { logger: opts.logger } : {}) });
    // Organizations are split over lanes by a hash of their id. A lane's batch carries both the
    // authorizations and the usage events that arrived together: one statement, one commit
    // (metering_batch, src/db/functions/metering.sql). Lanes lock disjoint organizations, so their batches run
    // in parallel instead of queueing behind each other's row locks. Each call has a fixed cost
    // in PostgreSQL that larger batches share, so lanes are few: two let PostgreSQL use two cores
    // without splitting batches too thin, with one batch at a time per lane (maxInFlight). Up to
    // 1,000 items per batch: a big usage report's per-organization work is shared by more of its
    // events. bench/RESULTS-metering.md has the measurements behind these defaults.
    const lanes = opts.lanes ?? 2;
    const batching = { maxBatch: opts.maxBatch ?? 1000, maxInFlight: opts.maxInFlight ?? 1 };
    this.lanes = Array.from(
      { length: lanes },
      () => new GroupCommitter<Item, Hold | UsageResult>((items, again) => this.writeBatch(items, again), batching),
    );
  }

  private lane(orgId: string): GroupCommitter<Item, Hold | UsageResult> {
    let h = 0;
    for (let i = 0; i < orgId.length; i++) h = (h * 31 + orgId.charCodeAt(i)) | 0;
    const lane = this.lanes[Math.abs(h) % this.lanes.length];
    if (lane === undefined) throw new Error("metering has no lanes");
    return lane;
  }

  async ready(): Promise<void> {
    await this.catalog.refresh();
  }

  // The entry points are plain functions returning promises, not async ones: the hot path then
  // costs one promise per request (the group commit's), not three. Each prices from memory when
  // the catalog there is known complete for the times it prices (Catalog.covers), else reads the
  // catalog first; after that read it prices with what it knows, since nothing fresher exists.

  authorize(input: AuthorizeInput, now: Date): Promise<Hold> {
    if (!this.catalog.covers(now)) return this.ensureCatalog().then(() => this.authorizePriced(input, now));
    return this.authorizePriced(input, now);
  }

  private authorizePriced(input: AuthorizeInput, now: Date): Promise<Hold> {
    try {
      return this.lane(input.orgId).submit(this.authorizeItem(input, now)) as Promise<Hold>;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  private authorizeItem(input: AuthorizeInput, now: Date): Item {
    const price = this.catalog.price(now, input.product, input.model, input.estimate, "estimate");
    const req: AuthorizeRequest = {
      orgId: input.orgId,
      holdId: newId("hold"),
      product: input.product,
      model: input.model,
      estimate: input.estimate,
      amount: boundedCost(price.cost, "estimate"),
      catalogVersion: price.version,
      idempotencyKey: input.idempotencyKey,
      ttlSeconds: input.ttlSeconds,
      apiKeyId: input.apiKeyId,
      project: input.project,
    };
    return { kind: "authorize", req, now };
  }

  /** Prices and records one event; rejects only for this event. */
  recordUsage(input: UsageInput, now: Date): Promise<UsageResult> {
    if (!this.catalog.covers(input.occurredAt))
      return this.ensureCatalog().then(() => this.recordUsagePriced(input, now));
    return this.recordUsagePriced(input, now);
  }

  private recordUsagePriced(input: UsageInput, now: Date): Promise<UsageResult> {
    try {
      return this.lane(input.orgId).submit(this.usageItem(input, now)) as Promise<UsageResult>;
    } catch (err) {
      return Promise.reject(err);
    }
  }

  /**
   * Prices and records many events (one usage report): one outcome per event, in order, an
   * Error for an event that was refused. One promise per lane instead of one per event keeps a
   * report of hundreds of events cheap in CPU and memory.
   */
  recordUsageMany(inputs: UsageInput[], now: Date): Promise<(UsageResult | Error)[]> {
    if (!inputs.every((input) => this.catalog.covers(input.occurredAt)))
      return this.ensureCatalog().then(() => this.recordUsageManyPriced(inputs, now));
    return this.recordUsageManyPriced(inputs, now);
  }

  private recordUsageManyPriced(inputs: UsageInput[], now: Date): Promise<(UsageResult | Error)[]> {
    return this.submitMany(inputs, (input) => this.usageItem(input, now)) as Promise<(UsageResult | Error)[]>;
  }

  /**
   * Prices and holds many authorizations (a batch from the gateway): one outcome per request, in
   * order, an Error for a request that was refused. One promise per lane, as for usage reports.
   */
  authorizeMany(inputs: AuthorizeInput[], now: Date): Promise<(Hold | Error)[]> {
    if (!this.catalog.covers(now)) return this.ensureCatalog().then(() => this.authorizeManyPriced(inputs, now));
    return this.authorizeManyPriced(inputs, now);
  }

  private authorizeManyPriced(inputs: AuthorizeInput[], now: Date): Promise<(Hold | Error)[]> {
    return this.submitMany(inputs, (input) => this.authorizeItem(input, now)) as Promise<(Hold | Error)[]>;
  }

  /** Queues each input's item on its organization's lane; an input that cannot be priced is answered alone. */
  private submitMany<T extends { orgId: string }>(
    inputs: T[],
    itemOf: (input: T) => Item,
  ): Promise<(Hold | UsageResult | Error)[]> {
    // Not async: once the items are queued nothing here keeps `inputs` alive.
    const outcomes: (Hold | UsageResult | Error)[] = new Array(inputs.length);
    const perLane = new Map<GroupCommitter<Item, Hold | UsageResult>, { items: Item[]; slots: number[] }>();
    inputs.forEach((input, k) => {
      try {
        const item = itemOf(input);
        const lane = this.lane(input.orgId);
        let group = perLane.get(lane);
        if (!group) {
          group = { items: [], slots: [] };
          perLane.set(lane, group);
        }
        group.items.push(item);
        group.slots.push(k);
      } catch (err) {
        outcomes[k] = err instanceof Error ? err : new Error(String(err));
      }
    });
    return Promise.all(
      [...perLane].map(([lane, { items, slots }]) =>
        lane.submitMany(items).then((results) => {
          for (const [j, r] of results.entries()) {
            const slot = slots[j];
            if (slot === undefined) throw new Error(`metering batch returned an outcome for no slot (${j})`);
            outcomes[slot] = r;
          }
        }),
      ),
    ).then(() => outcomes);
  }

  private usageItem(input: UsageInput, now: Date): Item {
    if (input.occurredAt.getTime() > now.getTime() + MAX_CLOCK_SKEW_MS) {
      throw new BillingError("invalid_request", "timestamp is in the future", { details: { param: "timestamp" } });
    }
    const price = this.catalog.price(input.occurredAt, input.product, input.model, input.quantities);
    const req: UsageRequest = {
      orgId: input.orgId,
      idempotencyKey: input.idempotencyKey,
      occurredAt: input.occurredAt,
      product: input.product,
      model: input.model,
      quantities: input.quantities,
      cost: boundedCost(price.cost, "quantities"),
      catalogVersion: price.version,
      holdId: input.holdId,
      apiKeyId: input.apiKeyId,
      project: input.project,
    };
    return { kind: "usage", req, now };
  }

  /**
   * One group commit: the batch's usage events and authorizations, decided and written by one
   * call of metering_batch (src/db/functions/metering.sql, which holds the money rules):
   * - each usage event is debited once (the unique key on (org, idempotency key) decides; a
   *   repeated key returns the first result and moves nothing) and settles its hold; costs
   *   above the hold are still charged, so credits may go negative by the overrun of requests
   *   that were authorized; a downward crossing of the low-balance threshold writes its alert
   *   row in the same commit and is returned here for delivery;
   * - each authorization either becomes a hold that reserves its amount on the org's credits
   *   account, or fails with 402. Requests of an organization are decided one by one against
   *   its locked balance, so N racing requests (from any number of replicas) get exactly as
   *   many holds as the balance covers. Expired holds stop reserving first.
   * - usage moves money as one ledger transaction for the batch: an entry per organization,
   *   one to revenue (holds move none).
   * The call runs outside any explicit transaction, so PostgreSQL makes it one transaction,
   * commits it durably and only then answers: the organizations' row locks are held while it
   * runs, never across round trips to this process.
   */
  private async writeBatch(items: Item[], again: boolean): Promise<BatchOutcome<Hold | UsageResult>[]> {
    const first = items[0];
    if (first === undefined) throw new Error("metering batch is empty");
    const now = items.reduce((a, i) => (i.now > a ? i.now : a), first.now);
    const { orgs, index } = batchOrgs(items.map((i) => i.req.orgId));
    const authorizations: AuthorizeRequest[] = [];
    const authorizationOrgs: number[] = [];
    const events: UsageRequest[] = [];
    const eventOrgs: number[] = [];
    items.forEach((item, k) => {
      const org = index[k];
      if (org === undefined) throw new Error(`metering batch item ${k} has no organization index`);
      if (item.kind === "authorize") {
        authorizations.push(item.req);
        authorizationOrgs.push(org);
      } else {
        events.push(item.req);
        eventOrgs.push(org);
      }
    });
    const a = prepareAuthorize(authorizations, now, authorizationOrgs, again);
    const u = prepareUsage(events, eventOrgs);
    // Ids for what may be written per organization with usage: the batch's one 'usage'
    // transaction (the same for each, metering_post) and a low-balance alert. Holds move no money
    // (metering.sql): they need no transaction.
    const withUsage = new Array<boolean>(orgs.length).fill(false);
    for (const i of eventOrgs) withUsage[i - 1] = true;
    const usageTxn = events.length > 0 ? newId("txn") : null;
    const batch = orgs.map(
      (org_id, i): BatchOrg => ({
        org_id,
        usage_txn: withUsage[i] ? usageTxn : null,
        alert_id: withUsage[i] ? newId("alert") : null,
      }),
    );
    await this.grantCycleCredits(orgs, now);
    const res = await callMeteringBatch(this.sql, now, batch, u.input, a.input);
    const held =
      authorizations.length > 0
        ? authorizeOutcomes(a, {
            outcomes: (res.authorize_outcomes ?? []) as AuthorizeAnswer["outcomes"],
            details: res.authorize_details as AuthorizeAnswer["details"],
          })
        : [];
    const used =
      events.length > 0
        ? usageOutcomes(
            u,
            {
              outcomes: (res.usage_outcomes ?? []) as UsageAnswer["outcomes"],
              duplicates: res.usage_duplicates as UsageAnswer["duplicates"],
              alerts: res.usage_alerts as UsageAnswer["alerts"],
            },
            orgs,
            batch.map((o) => o.alert_id),
          )
        : { outcomes: [], crossings: [] };
    if (used.crossings.length > 0 && this.opts.onCrossings) {
      // After commit. If this fails the alert rows are still in PostgreSQL and the sweeper sends them.
      this.opts
        .onCrossings(used.crossings)
        .catch((err) => this.opts.logger?.warn({ err }, "could not enqueue low-balance alerts; the sweeper will"));
    }
    let nextHold = 0;
    let nextEvent = 0;
    return items.map((i) => {
      const outcome = i.kind === "authorize" ? held[nextHold++] : used.outcomes[nextEvent++];
      if (outcome === undefined) throw new Error(`metering batch returned no outcome for a ${i.kind} item`);
      return outcome;
    });
  }

  /**
   * Before an organization's first request of a cycle is written, the cycle's included credits
   * (grantOpenCycleCredits): a map lookup per organization of the batch otherwise.
   */
  private async grantCycleCredits(orgs: string[], now: Date): Promise<void> {
    const t = now.getTime();
    const due = orgs.filter((org) => !((this.cycleEnds.get(org) ?? 0) > t));
    if (due.length === 0) return;
    const ends = await grantOpenCycleCredits(this.ctx, due, now);
    if (this.cycleEnds.size + due.length > MAX_REMEMBERED_CYCLES) this.cycleEnds.clear();
    for (const org of due) this.cycleEnds.set(org, ends.get(org)?.getTime() ?? t + UNKNOWN_ORG_RETRY_MS);
  }

  private async ensureCatalog() {
    await this.catalog.refresh();
    if (this.catalog.isEmpty)
      throw new BillingError("not_configured", "no pricing catalog is loaded; run npm run catalog:load");
  }
}
