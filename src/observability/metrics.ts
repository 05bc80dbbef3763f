import { collectDefaultMetrics, Counter, Gauge, Histogram, Registry } from "prom-client";
import type { ChainClient } from "../chain/client.js";
import type { Sql } from "../db/client.js";
import type { ReadRoutingObserver } from "../db/read-routing.js";
import type { Queues } from "../jobs/queues.js";

export type Metrics = ReturnType<typeof createMetrics>;

/**
 * Prometheus metrics of one API process. Request latency is measured here; everything that is
 * about shared state (holds, deposits, postings, queues) is read from PostgreSQL and Redis, so
 * every replica reports the same truth and nothing is lost on restart. The reads that aggregate
 * whole tables (holds, postings, deposits) are a snapshot taken at most once per `snapshotMs`
 * (METRICS_SNAPSHOT_SECONDS in the API; 0: every scrape), so scrapes from several Prometheus
 * servers, or a client hammering /metrics, cost PostgreSQL one aggregate per period.
 */
export function createMetrics(deps: {
  sql: Sql;
  queues?: Queues;
  indexer?: { viewsSchema: string; chain: ChainClient };
  snapshotMs?: number;
}) {
  const snapshot = <T>(read: () => Promise<T>) => cachedFor(deps.snapshotMs ?? 0, read);
  // Our own registry, not prom-client's global one (Ponder, in the same node_modules, uses that).
  const registry = new Registry();
  collectDefaultMetrics({ register: registry, prefix: "hanzo_api_" });

  const httpDuration = new Histogram({
    name: "hanzo_http_request_duration_seconds",
    help: "HTTP request latency by route template, method and status",
    labelNames: ["method", "route", "status"] as const,
    buckets: [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5],
    registers: [registry],
  });

  const liveHolds = snapshot(async () => {
    const [row] = await deps.sql<{ n: number; amount: string }[]>`
      select count(*)::int as n, coalesce(sum(amount), 0)::text as amount from holds where status = 'active'`;
    return row;
  });
  new Gauge({
    name: "hanzo_holds_live",
    help: "Authorizations holding credits right now, and the amount held in nano-USD",
    labelNames: ["measure"] as const,
    registers: [registry],
    async collect() {
      const row = await liveHolds();
      this.set({ measure: "count" }, row?.n ?? 0);
      this.set({ measure: "nano_usd" }, Number(row?.amount ?? 0));
    },
  });

  const postings = snapshot(
    () =>
      deps.sql<{ kind: string; n: number }[]>`select kind, count(*)::int as n from ledger_transactions group by kind`,
  );
  new Gauge({
    name: "hanzo_ledger_postings",
    help: "Ledger transactions by kind (all time)",
    labelNames: ["kind"] as const,
    registers: [registry],
    async collect() {
      const rows = await postings();
      this.reset();
      for (const r of rows) this.set({ kind: r.kind }, r.n);
    },
  });

  // Counts by state and the oldest undecided deposit from one statement per scrape, for both gauges.
  const DepositStates = ["seen", "confirming", "credited", "orphaned", "rejected", "reversed"] as const;
  const depositStats = snapshot(async () => {
    const rows = await deps.sql<{ state: string; n: number; oldest_seconds: number }[]>`
      select state, count(*)::int as n, extract(epoch from now() - min(seen_at))::float8 as oldest_seconds
      from husd_deposits group by state`.catch((err: { code?: string }) => {
      if (err.code === "42P01") return null; // a database not migrated yet
      throw err;
    });
    if (!rows) return null;
    const pending = rows
      .filter((r) => r.state === "seen" || r.state === "confirming")
      .map((r) => Math.max(0, r.oldest_seconds));
    return {
      byState: new Map(rows.map((r) => [r.state, r.n])),
      oldestPendingSeconds: pending.length ? Math.max(...pending) : 0,
    };
  });

  new Gauge({
    name: "hanzo_deposits",
    help: "HUSD deposits by state",
    labelNames: ["state"] as const,
    registers: [registry],
    async collect() {
      const stats = await depositStats();
      if (!stats) return;
      this.reset();
      for (const state of new Set([...DepositStates, ...stats.byState.keys()]))
        this.set({ state }, stats.byState.get(state) ?? 0);
    },
  });

  new Gauge({
    name: "hanzo_deposit_oldest_pending_age_seconds",
    help: "Seconds since the oldest HUSD deposit still seen or confirming was first recorded (0 when none is pending)",
    registers: [registry],
    async collect() {
      const stats = await depositStats();
      this.set(stats?.oldestPendingSeconds ?? 0);
    },
  });

  // The worker's last ledger reconciliation (migration 0015), whichever worker ran it.
  const lastLedgerCheck = sharedPerScrape(async () => {
    const [row] = await deps.sql<
      { at: number; unbalanced_transactions: number; balance_mismatches: number; held_mismatches: number }[]
    >`
      select extract(epoch from checked_at)::float8 as at, unbalanced_transactions, balance_mismatches, held_mismatches
      from ledger_checks order by id desc limit 1`;
    return row;
  });
  new Gauge({
    name: "hanzo_ledger_check_last_run_timestamp_seconds",
    help: "When the last ledger reconciliation ran (Unix time; 0 before the first)",
    registers: [registry],
    async collect() {
      this.set((await lastLedgerCheck())?.at ?? 0);
    },
  });
  new Gauge({
    name: "hanzo_ledger_check_mismatches",
    help: "What the last ledger reconciliation found wrong, by kind (all 0 on a healthy ledger; details in operator_alerts)",
    labelNames: ["kind"] as const,
    registers: [registry],
    async collect() {
      const run = await lastLedgerCheck();
      this.reset();
      if (!run) return;
      this.set({ kind: "unbalanced_transaction" }, run.unbalanced_transactions);
      this.set({ kind: "balance_cache" }, run.balance_mismatches);
      this.set({ kind: "held" }, run.held_mismatches);
    },
  });

  if (deps.indexer) {
    const { viewsSchema, chain } = deps.indexer;
    // The live build's last indexed block, through the views (during a deploy: the previous
    // build's, frozen, so the lag shows how long deposits go unseen), against the node's head.
    const position = sharedPerScrape(async (): Promise<{ indexed?: number; head?: number }> => {
      const [view] = await deps.sql<
        { t: string | null }[]
      >`select to_regclass(${`${viewsSchema}._ponder_checkpoint`})::text as t`;
      const [row] = view?.t
        ? await deps.sql<
            { block: string }[]
          >`select max(substr(latest_checkpoint, 27, 16))::bigint::text as block from ${deps.sql(viewsSchema)}._ponder_checkpoint`
        : [];
      const head = await chain.getBlockNumber().catch(() => undefined);
      return {
        indexed: row?.block == null ? undefined : Number(row.block),
        head: head === undefined ? undefined : Number(head),
      };
    });
    new Gauge({
      name: "hanzo_indexer_block",
      help: "HUSD indexer position: the last block the live build indexed, and the chain's head",
      labelNames: ["which"] as const,
      registers: [registry],
      async collect() {
        const { indexed, head } = await position();
        this.reset();
        if (indexed !== undefined) this.set({ which: "indexed" }, indexed);
        if (head !== undefined) this.set({ which: "chain_head" }, head);
      },
    });
    new Gauge({
      name: "hanzo_indexer_lag_blocks",
      help: "Blocks the chain's head is ahead of the live indexer build (deposits in them are not seen yet)",
      registers: [registry],
      async collect() {
        const { indexed, head } = await position();
        this.reset();
        if (indexed !== undefined && head !== undefined) this.set(Math.max(0, head - indexed));
      },
    });
  }

  if (deps.queues) {
    const queues = deps.queues;
    new Gauge({
      name: "hanzo_queue_jobs",
      help: "BullMQ jobs by queue and state",
      labelNames: ["queue", "state"] as const,
      registers: [registry],
      async collect() {
        for (const q of queues.all()) {
          const counts = await q.getJobCounts("waiting", "active", "delayed", "failed", "completed");
          for (const [state, n] of Object.entries(counts)) this.set({ queue: q.name, state }, n);
        }
      },
    });
  }

  // Registered only by a process that has a read replica (a gauge at 0 would read as "replica down").
  let readRouting: ReadRoutingObserver | undefined;
  const readRoutingObserver = () => (readRouting ??= readRoutingMetrics(registry));

  return { registry, httpDuration, readRoutingObserver };
}

/** The read replica's routing (db/read-routing.ts): where reads went, and the fallbacks worth a warning. */
function readRoutingMetrics(registry: Registry): ReadRoutingObserver {
  const reads = new Counter({
    name: "hanzo_db_reads_total",
    help: "Reads of the read-mostly endpoints by where they ran (replica, primary) and why",
    labelNames: ["target", "reason"] as const,
    registers: [registry],
  });
  const fallbacks = new Counter({
    name: "hanzo_db_replica_fallbacks_total",
    help: "Reads the read replica should have served but could not (unreachable, error, not_a_replica): served by the primary. Alert on any increase",
    labelNames: ["reason"] as const,
    registers: [registry],
  });
  const up = new Gauge({
    name: "hanzo_db_replica_up",
    help: "1 while the read replica answers, 0 while reads fall back to the primary",
    registers: [registry],
  });
  return {
    routed: (target, reason) => reads.inc({ target, reason }),
    fellBack: (reason) => fallbacks.inc({ reason }),
    replicaUp: (isUp) => up.set(isUp ? 1 : 0),
  };
}

/**
 * A read kept for `ms` after it completes (0: not kept), shared by the calls made while it is in
 * flight. A failed read is not kept.
 */
function cachedFor<T>(ms: number, read: () => Promise<T>): () => Promise<T> {
  let kept: { value: T; until: number } | undefined;
  const shared = sharedPerScrape(async () => {
    const value = await read();
    if (ms > 0) kept = { value, until: performance.now() + ms };
    return value;
  });
  return () => (kept && kept.until > performance.now() ? Promise.resolve(kept.value) : shared());
}

/**
 * A read that several gauges of one scrape need: prom-client collects them concurrently, so the
 * calls made while one read is in flight share it, and the next scrape reads again.
 */
function sharedPerScrape<T>(read: () => Promise<T>): () => Promise<T> {
  let inFlight: Promise<T> | undefined;
  return () => (inFlight ??= read().finally(() => (inFlight = undefined)));
}
