import { useEffect, useRef, useState } from "preact/hooks";
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import { api, type Schemas } from "../api.ts";
import { period, usd } from "../format.ts";
import type { PageProps } from "../page.ts";
import { Loaded, Notice, Section, Table, useLoad } from "../ui.tsx";

type Usage = Schemas["UsageReport"];
type Group = Schemas["UsageGroup"];
const GROUPINGS = ["product", "model", "key", "project"] as const;
type Grouping = (typeof GROUPINGS)[number];

const label = (g: Group, by: Grouping) => {
  const v = g[by];
  if (v === undefined || v === null || v === "") return by === "model" ? "(no model)" : `(no ${by})`;
  return v;
};

/**
 * The Cost view: one GET /v1/billing/usage per choice (period, grouping), daily buckets included;
 * every figure on the page is that answer's, so the totals are the API's exactly.
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
        {(u) => <CostReport usage={u} by={by} stale={usage.loading} />}
      </Loaded>
    </>
  );
}

function CostReport(props: { usage: Usage; by: Grouping; stale: boolean }) {
  const { usage, by } = props;
  const groups = [...(usage.groups ?? [])].sort((a, b) => (BigInt(b.cost_nano_usd) > BigInt(a.cost_nano_usd) ? 1 : -1));
  const total = BigInt(usage.total_nano_usd);
  return (
    <div class={props.stale ? "stale" : undefined}>
      <Section title={`Total, ${period(usage.period.start, usage.period.end)}`}>
        <p class="big" data-testid="cost-total" data-nano={usage.total_nano_usd}>
          {usd(usage.total_nano_usd)}
        </p>
        <DailyChart days={usage.days ?? []} />
      </Section>
      <Section title={`By ${by === "key" ? "API key" : by}`}>
        <Table
          caption={`Cost by ${by}`}
          head={[by === "key" ? "API key" : by, "Requests", "Cost", "Share"]}
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
      <Notice>CSV download of this view comes with the exports work.</Notice>
    </div>
  );
}

/** Daily cost bars (uPlot), with the same figures as a table for screen readers. */
function DailyChart(props: { days: NonNullable<Usage["days"]> }) {
  const el = useRef<HTMLDivElement>(null);
  useEffect(() => {
    const node = el.current;
    if (!node || !props.days.length) return;
    const xs = props.days.map((d) => new Date(`${d.date}T00:00:00Z`).getTime() / 1000);
    const ys = props.days.map((d) => Number(BigInt(d.cost_nano_usd) / 10_000_000n) / 100); // cents → dollars, for drawing only
    const width = () => Math.max(260, node.clientWidth);
    const chart = new uPlot(
      {
        width: width(),
        height: 220,
        tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
        legend: { show: false },
        cursor: { drag: { x: false, y: false } },
        scales: { x: { time: true }, y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.1 : 1] } },
        axes: [{}, { values: (_u, vals) => vals.map((v) => `$${v.toFixed(2)}`), size: 64 }],
        series: [
          {},
          {
            label: "Cost",
            fill: "#4f6bed",
            stroke: "#4f6bed",
            paths: uPlot.paths.bars?.({ size: [0.7, 40] }),
            points: { show: false },
          },
        ],
      },
      [xs, ys],
      node,
    );
    const resize = () => chart.setSize({ width: width(), height: 220 });
    window.addEventListener("resize", resize);
    return () => {
      window.removeEventListener("resize", resize);
      chart.destroy();
    };
  }, [props.days]);
  return (
    <>
      <div ref={el} class="chart" aria-hidden="true" data-testid="daily-chart" />
      <details>
        <summary>Daily figures</summary>
        <Table caption="Cost per day" head={["Day (UTC)", "Cost"]}>
          {props.days.map((d) => (
            <tr key={d.date}>
              <td>{d.date}</td>
              <td class="num">{usd(d.cost_nano_usd)}</td>
            </tr>
          ))}
        </Table>
      </details>
    </>
  );
}
