import { useEffect, useMemo, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { api, type Schemas } from "../api.ts";
import { period, usd } from "../format.ts";
import type { PageProps } from "../page.ts";
import { Loaded, Notice, Progress, Section, Table, useLoad } from "../ui.tsx";

type Usage = Schemas["UsageReport"];
type Group = Schemas["UsageGroup"];
type Day = NonNullable<Usage["days"]>[number];
const GROUPINGS = ["product", "model", "key", "project"] as const;
type Grouping = (typeof GROUPINGS)[number];

/** One empty list, so a chart's inputs keep their identity while nothing has come (no redraw each render). */
const NO_DAYS: Day[] = [];

const groupingName = (by: Grouping) => (by === "key" ? "API key" : by);

const label = (g: Group, by: Grouping) => {
  const v = g[by];
  if (v === undefined || v === null || v === "") return by === "model" ? "(no model)" : `(no ${by})`;
  return v;
};

/** `period` for GET /v1/billing/usage of the cycle before the one starting at `start` (cycles are monthly, one per month). */
function cycleBefore(start: string): string {
  const d = new Date(start);
  const month = new Date(Date.UTC(d.getUTCFullYear(), d.getUTCMonth() - 1, 1));
  return `${month.getUTCFullYear()}-${String(month.getUTCMonth() + 1).padStart(2, "0")}`;
}

/** The usage export of exactly what the page shows: the same period and grouping (see the README's exports). */
const exportUrl = (u: Usage, groupBy: string) =>
  `/v1/billing/exports/usage.csv?${new URLSearchParams({ start: u.period.start, end: u.period.end, group_by: groupBy })}`;

/**
 * The Cost view: one GET /v1/billing/usage per choice (period, grouping), daily buckets included;
 * every figure on the page is that answer's, so the totals are the API's exactly. The daily chart
 * sets the chosen period beside the one before it (a second report, by day only).
 */
export function CostsPage(props: PageProps) {
  const [which, setWhich] = useState(props.query.get("period") === "previous" ? "previous" : "current");
  const [by, setBy] = useState<Grouping>(
    (GROUPINGS as readonly string[]).includes(props.query.get("group_by") ?? "")
      ? (props.query.get("group_by") as Grouping)
      : "product",
  );
  const usage = useLoad(
    () => api<Usage>("GET", `/v1/billing/usage?period=${which}&group_by=${by}&granularity=day`),
    [which, by],
  );
  const start = usage.data?.period.start;
  const before = useLoad(
    async () =>
      start ? api<Usage>("GET", `/v1/billing/usage?period=${cycleBefore(start)}&granularity=day`) : undefined,
    [start],
  );
  return (
    <>
      <fieldset class="toolbar">
        <legend class="sr-only">What to show</legend>
        <label>
          Period{" "}
          <select value={which} onChange={(e) => setWhich(e.currentTarget.value)}>
            <option value="current">This period</option>
            <option value="previous">Previous period</option>
          </select>
        </label>
        <label>
          Group by{" "}
          <select value={by} onChange={(e) => setBy(e.currentTarget.value as Grouping)}>
            {GROUPINGS.map((g) => (
              <option key={g} value={g}>
                {g === "key" ? "API key" : g[0]?.toUpperCase() + g.slice(1)}
              </option>
            ))}
          </select>
        </label>
      </fieldset>
      <Loaded state={usage} what="your costs">
        {(u) => (
          <CostReport
            usage={u}
            before={before.data?.period.end === u.period.start ? before.data : undefined}
            beforeError={before.error}
            by={by}
            stale={usage.loading}
          />
        )}
      </Loaded>
    </>
  );
}

function CostReport(props: {
  usage: Usage;
  before: Usage | undefined;
  beforeError: string | undefined;
  by: Grouping;
  stale: boolean;
}) {
  const { usage, by } = props;
  // When this report's data arrived, to measure how long the page takes to show it (data-render-ms).
  const startedAt = useMemo(() => performance.now(), [usage]);
  const root = useRef<HTMLDivElement>(null);
  const groups = [...(usage.groups ?? [])].sort((a, b) => (BigInt(b.cost_nano_usd) > BigInt(a.cost_nano_usd) ? 1 : -1));
  const total = BigInt(usage.total_nano_usd);
  // The first frame after the report, its tables and its chart are on the page: its render time.
  const measured = useRef<number | undefined>(undefined);
  const drawn = () => {
    if (measured.current === startedAt) return;
    measured.current = startedAt;
    requestAnimationFrame(() => {
      root.current?.setAttribute("data-render-ms", (performance.now() - startedAt).toFixed(1));
    });
  };
  return (
    <div class={props.stale ? "stale" : undefined} ref={root} data-testid="cost-report">
      <Section
        title={`Total, ${period(usage.period.start, usage.period.end)}`}
        actions={
          <div class="row">
            <a class="btn" href={exportUrl(usage, by)} download data-testid="cost-csv">
              Download CSV (by {groupingName(by)})
            </a>
            <a class="btn" href={exportUrl(usage, "day")} download>
              Daily CSV
            </a>
          </div>
        }
      >
        <p class="big" data-testid="cost-total" data-nano={usage.total_nano_usd}>
          {usd(usage.total_nano_usd)}
        </p>
        {props.before ? (
          <p class="muted">
            Previous period ({period(props.before.period.start, props.before.period.end)}):{" "}
            <span data-testid="cost-before-total" data-nano={props.before.total_nano_usd}>
              {usd(props.before.total_nano_usd)}
            </span>
          </p>
        ) : props.beforeError ? (
          <Notice kind="error">The previous period could not be loaded: {props.beforeError}</Notice>
        ) : (
          <Progress>Loading the previous period…</Progress>
        )}
        <DailyChart
          days={usage.days ?? NO_DAYS}
          before={props.before?.days ?? NO_DAYS}
          label={period(usage.period.start, usage.period.end)}
          onDrawn={drawn}
        />
        <DailyTable days={usage.days ?? NO_DAYS} groups={groups} by={by} />
      </Section>
      <Section title={`By ${groupingName(by)}`}>
        <Table
          caption={`Cost by ${groupingName(by)}`}
          head={[groupingName(by), "Requests", "Cost", "Share"]}
          empty={!groups.length}
        >
          {groups.map((g) => (
            <tr key={label(g, by)} data-testid="cost-row">
              <td>{label(g, by)}</td>
              <td class="num">{g.events.toLocaleString("en")}</td>
              <td class="num" data-nano={g.cost_nano_usd}>
                {usd(g.cost_nano_usd)}
              </td>
              <td class="num">
                {total > 0n ? `${(Number((BigInt(g.cost_nano_usd) * 1000n) / total) / 10).toFixed(1)}%` : "—"}
              </td>
            </tr>
          ))}
        </Table>
      </Section>
      {by === "product" && usage.products.some((p) => p.models.length > 1) ? (
        <Section title="By product and model">
          <Table caption="Cost by product and model" head={["Product", "Model", "Requests", "Cost"]}>
            {usage.products.flatMap((p) =>
              p.models.map((m) => (
                <tr key={`${p.product}/${m.model}`}>
                  <td>{p.product}</td>
                  <td>{m.model ?? "(no model)"}</td>
                  <td class="num">{m.events.toLocaleString("en")}</td>
                  <td class="num">{usd(m.cost_nano_usd)}</td>
                </tr>
              )),
            )}
          </Table>
        </Section>
      ) : null}
    </div>
  );
}

/** Cents → dollars, for drawing only (the figures shown are the exact ones). */
const dollars = (nano: string) => Number(BigInt(nano) / 10_000_000n) / 100;

/**
 * Daily cost bars (uPlot): the chosen period and the one before it, side by side per day of the
 * period (day 1, day 2, …), so the two line up whatever their dates. A table below has the figures.
 */
function DailyChart(props: { days: Day[]; before: Day[]; label: string; onDrawn: () => void }) {
  const el = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const node = el.current;
    if (!node || !props.days.length) return;
    const n = Math.max(props.days.length, props.before.length);
    const xs = Array.from({ length: n }, (_, i) => i + 1);
    const ys = xs.map((_, i) => (props.days[i] ? dollars(props.days[i].cost_nano_usd) : null));
    const prev = xs.map((_, i) => (props.before[i] ? dollars(props.before[i].cost_nano_usd) : null));
    const width = () => Math.max(260, node.clientWidth);
    const bars = (align: -1 | 1) => uPlot.paths.bars?.({ size: [0.42, 24], align });
    const chart = new uPlot(
      {
        width: width(),
        height: 220,
        legend: { show: true, live: false },
        cursor: { drag: { x: false, y: false } },
        scales: {
          x: { time: false, range: (_u, min, max) => [min - 0.6, max + 0.6] },
          y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] },
        },
        axes: [
          { values: (_u, vals) => vals.map((v) => (Number.isInteger(v) ? `day ${v}` : "")) },
          { values: (_u, vals) => vals.map((v) => `$${v.toFixed(2)}`), size: 64 },
        ],
        series: [
          {},
          {
            label: "Previous period",
            fill: "#c3c9d8",
            stroke: "#9aa3b8",
            paths: bars(-1),
            points: { show: false },
          },
          { label: props.label, fill: "#4f6bed", stroke: "#4f6bed", paths: bars(1), points: { show: false } },
        ],
      },
      [xs, prev, ys],
      node,
    );
    props.onDrawn();
    const resize = () => chart.setSize({ width: width(), height: 220 });
    window.addEventListener("resize", resize);
    return () => {
      window.removeEventListener("resize", resize);
      chart.destroy();
    };
  }, [props.days, props.before]);
  return <div ref={el} class="chart" aria-hidden="true" data-testid="daily-chart" />;
}

/**
 * The chart's figures for screen readers and for reading: each day's cost, and its split by the
 * grouping's top ten. Built when opened: a 90-day period is a thousand cells nobody sees until then.
 */
function DailyTable(props: { days: Day[]; groups: Group[]; by: Grouping }) {
  const [open, setOpen] = useState(false);
  const top = props.groups.slice(0, 10).map((g) => label(g, props.by));
  return (
    <details onToggle={(e) => setOpen(e.currentTarget.open)}>
      <summary>Daily figures</summary>
      {open ? (
        <Table caption="Cost per day" head={["Day (UTC)", "Cost", ...top]}>
          {props.days.map((d) => {
            const byLabel = new Map((d.groups ?? []).map((g) => [label(g, props.by), g.cost_nano_usd]));
            return (
              <tr key={d.date} data-testid="daily-row">
                <td>{d.date}</td>
                <td class="num">{usd(d.cost_nano_usd)}</td>
                {top.map((t) => (
                  <td key={t} class="num">
                    {byLabel.has(t) ? usd(byLabel.get(t)) : "—"}
                  </td>
                ))}
              </tr>
            );
          })}
        </Table>
      ) : null}
    </details>
  );
}
