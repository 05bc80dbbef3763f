import { useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import { api, type Schemas } from "../api.ts";
import { DailyChart } from "../daily-chart.tsx";
import { period, usd } from "../format.ts";
import type { PageProps } from "../page.ts";
import { planSeries, type SeriesPlan, type StackedDay, stackDays } from "../stacked-days.ts";
import { Loaded, message, Notice, Section, Table, useLoad } from "../ui.tsx";

type Usage = Schemas["UsageReport"];
type Group = Schemas["UsageGroup"];
const GROUPINGS = ["product", "model", "key", "project"] as const;
type Grouping = (typeof GROUPINGS)[number];

const groupingName = (by: Grouping) => (by === "key" ? "API key" : by);
const columnName = (by: Grouping) => (by === "key" ? "API key" : `${by[0]?.toUpperCase()}${by.slice(1)}`);

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

/** What the Cost view draws: the chosen period's report, the one before it (or why not), and when they arrived. */
type Costs = { by: Grouping; usage: Usage; before?: Usage; beforeError?: string; arrivedAt: number };

const report = (p: string, by: Grouping) =>
  api<Usage>("GET", `/v1/billing/usage?period=${p}&group_by=${by}&granularity=day`);

/** The chosen period, then the one before it in the same grouping; the page draws once, with both. */
async function loadCosts(which: string, by: Grouping): Promise<Costs> {
  const usage = await report(which, by);
  try {
    const before = await report(cycleBefore(usage.period.start), by);
    // Only the period right before this one is set beside it.
    const adjacent = before.period.end === usage.period.start;
    return { by, usage, before: adjacent ? before : undefined, arrivedAt: performance.now() };
  } catch (err) {
    return { by, usage, beforeError: message(err), arrivedAt: performance.now() };
  }
}

/**
 * The Cost view: GET /v1/billing/usage per choice (period, grouping), daily buckets included, and
 * the period before it in the same grouping; every figure on the page is those answers', so the
 * totals are the API's exactly. The daily bars are split by the grouping, for both periods.
 */
export function CostsPage(props: PageProps) {
  const [which, setWhich] = useState(props.query.get("period") === "previous" ? "previous" : "current");
  const [by, setBy] = useState<Grouping>(
    (GROUPINGS as readonly string[]).includes(props.query.get("group_by") ?? "")
      ? (props.query.get("group_by") as Grouping)
      : "product",
  );
  const costs = useLoad(() => loadCosts(which, by), [which, by]);
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
                {columnName(g)}
              </option>
            ))}
          </select>
        </label>
      </fieldset>
      <Loaded state={costs} what="your costs">
        {(c) => <CostReport costs={c} stale={costs.loading} />}
      </Loaded>
    </>
  );
}

/** The report's groups, largest first, and the daily bars split into series, computed once per answer. */
function useCostModel(costs: Costs) {
  return useMemo(() => {
    const { usage, before, by } = costs;
    const of = (g: Group) => label(g, by);
    const groups = (usage.groups ?? [])
      .map((g) => ({ g, nano: BigInt(g.cost_nano_usd) }))
      .sort((a, b) => (b.nano > a.nano ? 1 : b.nano < a.nano ? -1 : 0));
    const plan: SeriesPlan = planSeries(usage.groups ?? [], before?.groups ?? [], of);
    const current = stackDays(usage.days ?? [], plan, of);
    const previous: StackedDay[] = before ? stackDays(before.days ?? [], plan, of) : [];
    return { groups, plan, current, previous, total: BigInt(usage.total_nano_usd) };
  }, [costs]);
}

/**
 * Once the frame that shows `costs` is painted (the next animation frame after the DOM has it, then
 * a task after that frame): how long since its data arrived, as a performance measure and data-render-ms.
 */
function useRenderTiming(costs: Costs) {
  const root = useRef<HTMLDivElement>(null);
  useLayoutEffect(() => {
    requestAnimationFrame(() =>
      setTimeout(() => {
        const ms = performance.now() - costs.arrivedAt;
        performance.measure("cost-view-render", { start: costs.arrivedAt, duration: ms });
        root.current?.setAttribute("data-render-ms", ms.toFixed(1));
      }, 0),
    );
  }, [costs]);
  return root;
}

function CostReport(props: { costs: Costs; stale: boolean }) {
  const { usage, before, beforeError, by } = props.costs;
  const model = useCostModel(props.costs);
  const root = useRenderTiming(props.costs);
  const { groups, total } = model;
  const shownName = period(usage.period.start, usage.period.end);
  return (
    <div class={props.stale ? "stale" : undefined} ref={root} data-testid="cost-report" data-group-by={by}>
      <Section
        title={`Total, ${shownName}`}
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
        {before ? (
          <p class="muted">
            Previous period ({period(before.period.start, before.period.end)}):{" "}
            <span data-testid="cost-before-total" data-nano={before.total_nano_usd}>
              {usd(before.total_nano_usd)}
            </span>
          </p>
        ) : beforeError ? (
          <Notice kind="error">The previous period could not be loaded: {beforeError}</Notice>
        ) : null}
        <DailyChart
          current={model.current}
          previous={model.previous}
          labels={model.plan.labels}
          currentName={shownName}
          previousName={before ? period(before.period.start, before.period.end) : undefined}
        />
        <DailyTable days={model.current} labels={model.plan.labels} />
      </Section>
      <Section title={`By ${groupingName(by)}`}>
        <Table
          caption={`Cost by ${groupingName(by)}`}
          head={[columnName(by), "Requests", "Cost", "Share"]}
          empty={!groups.length}
        >
          {groups.map(({ g, nano }) => (
            <tr key={label(g, by)} data-testid="cost-row">
              <td>{label(g, by)}</td>
              <td class="num">{g.events.toLocaleString("en")}</td>
              <td class="num" data-nano={g.cost_nano_usd}>
                {usd(nano)}
              </td>
              <td class="num">{total > 0n ? `${(Number((nano * 1000n) / total) / 10).toFixed(1)}%` : "—"}</td>
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

/**
 * The chart's figures for screen readers and for reading: each day's cost and its split into the
 * chart's series. Built when opened: a 90-day period is a thousand cells nobody sees until then.
 */
function DailyTable(props: { days: StackedDay[]; labels: string[] }) {
  const [open, setOpen] = useState(false);
  return (
    <details onToggle={(e) => setOpen(e.currentTarget.open)}>
      <summary>Daily figures</summary>
      {open ? (
        <Table caption="Cost per day" head={["Day (UTC)", "Cost", ...props.labels]}>
          {props.days.map((d) => (
            <tr key={d.date} data-testid="daily-row">
              <td>{d.date}</td>
              <td class="num">{usd(d.total)}</td>
              {d.amounts.map((a, i) => (
                <td key={props.labels[i]} class="num">
                  {a === 0n ? "—" : usd(a)}
                </td>
              ))}
            </tr>
          ))}
        </Table>
      ) : null}
    </details>
  );
}
