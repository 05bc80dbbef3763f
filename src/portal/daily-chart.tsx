import { useMemo, useState } from "preact/hooks";
import { usd } from "./format.ts";
import { axis, type StackedDay } from "./stacked-days.ts";

/** Width of one day in the drawing's units: the previous period's bar, then the shown period's. */
const SLOT = 10;
const BAR = 3.8;
const HEIGHT = 100;
const PREVIOUS_AT = (SLOT - 2 * BAR) / 3;
const CURRENT_AT = 2 * PREVIOUS_AT + BAR;

const escapeXml = (text: string) =>
  text.replace(/[&<>"]/g, (c) => (c === "&" ? "&amp;" : c === "<" ? "&lt;" : c === ">" ? "&gt;" : "&quot;"));
const round = (v: number) => Math.round(v * 1000) / 1000;

/**
 * One period's bars as SVG markup: a path per series (a rectangle per day where it is not zero),
 * so 90 days × 10 series is ten elements for the browser to parse, style and paint, not nine
 * hundred. The exact figures ride along as data: each path's amounts per day, and the period's
 * dates and day totals, all in nano-USD as the API gave them. Heights are the only floats:
 * drawing positions, never figures shown.
 */
function barsMarkup(days: StackedDay[], series: number, period: "current" | "previous", offset: number, scale: number) {
  const tops = new Array<number>(days.length).fill(HEIGHT);
  const paths: string[] = [];
  for (let s = 0; s < series; s++) {
    const d: string[] = [];
    const amounts: string[] = [];
    for (let i = 0; i < days.length; i++) {
      const amount = (days[i] as StackedDay).amounts[s] ?? 0n;
      amounts.push(amount.toString());
      if (amount === 0n) continue;
      const h = Number(amount) * scale;
      const top = (tops[i] as number) - h;
      tops[i] = top;
      d.push(`M${round(i * SLOT + offset)} ${round(top)}h${BAR}v${round(h)}h-${BAR}z`);
    }
    paths.push(`<path class="s${s}" data-series="${s}" data-nano="${amounts.join(" ")}" d="${d.join("") || "M0 0"}"/>`);
  }
  const dates = escapeXml(days.map((d) => d.date).join(" "));
  const totals = days.map((d) => d.totalNano.toString()).join(" ");
  return `<g data-period="${period}" data-dates="${dates}" data-nano="${totals}">${paths.join("")}</g>`;
}

/** Every seventh day labelled on a long period, every other on a short one. */
const labelEvery = (n: number) => (n > 45 ? 14 : n > 14 ? 7 : n > 7 ? 2 : 1);

/**
 * Daily cost bars, stacked by the grouping's series, the previous period's (lighter, left) beside
 * the shown period's (right) for each day of the period (day 1, day 2, …), so the two line up
 * whatever their dates. Pointing at a bar says its figures; the table below has every figure.
 */
export function DailyChart(props: {
  current: StackedDay[];
  previous: StackedDay[];
  labels: string[];
  currentName: string;
  previousName: string | undefined;
}) {
  const { current, previous, labels } = props;
  const drawing = useMemo(() => {
    let largest = 0n;
    for (const d of current) if (d.totalNano > largest) largest = d.totalNano;
    for (const d of previous) if (d.totalNano > largest) largest = d.totalNano;
    const { topNano, ticks } = axis(largest);
    const n = Math.max(current.length, previous.length, 1);
    const scale = HEIGHT / Number(topNano);
    const width = n * SLOT;
    const grid = ticks.map((t) => `M0 ${round(HEIGHT - Number(t.nano) * scale)}H${width}`).join("");
    const markup =
      `<svg viewBox="0 0 ${width} ${HEIGHT}" preserveAspectRatio="none" width="100%" height="100%">` +
      `<path class="grid" d="${grid}" vector-effect="non-scaling-stroke"/>` +
      barsMarkup(previous, labels.length, "previous", PREVIOUS_AT, scale) +
      barsMarkup(current, labels.length, "current", CURRENT_AT, scale) +
      "</svg>";
    const every = labelEvery(n);
    const days = Array.from({ length: Math.ceil(n / every) }, (_, k) => k * every).map((i) => ({
      text: `day ${i + 1}`,
      at: ((i * SLOT + SLOT / 2) / width) * 100,
    }));
    return { markup, ticks: ticks.map((t) => ({ label: t.label, at: (Number(t.nano) * scale * 100) / HEIGHT })), days };
  }, [current, previous, labels]);
  const [tip, setTip] = useState("");
  // Which bar the pointer is on, from its position: the day's slot, then its left or right bar.
  const point = (e: MouseEvent) => {
    const box = (e.currentTarget as HTMLElement).getBoundingClientRect();
    const n = Math.max(current.length, previous.length, 1);
    const at = ((e.clientX - box.left) / box.width) * n * SLOT;
    const i = Math.floor(at / SLOT);
    const within = at - i * SLOT;
    const inPrevious = within >= PREVIOUS_AT && within <= PREVIOUS_AT + BAR;
    const inCurrent = within >= CURRENT_AT && within <= CURRENT_AT + BAR;
    const day = inPrevious ? previous[i] : inCurrent ? current[i] : undefined;
    if (!day) return setTip("");
    const parts = day.amounts.flatMap((a, s) => (a === 0n ? [] : [`${labels[s]} ${usd(a)}`]));
    const which = inPrevious ? props.previousName : props.currentName;
    setTip(`${day.date} (${which}): ${usd(day.total)}${parts.length ? ` · ${parts.join(" · ")}` : ""}`);
  };
  return (
    <figure class="daily">
      <div class="chart-area" aria-hidden="true">
        <div class="y-axis">
          {drawing.ticks.map((t) => (
            <span key={t.label} style={{ bottom: `${t.at}%` }}>
              {t.label}
            </span>
          ))}
        </div>
        {/* biome-ignore lint/a11y/noStaticElementInteractions: a pointer's convenience on a chart hidden from assistive technology; the daily table has every figure */}
        <div
          class="plot"
          data-testid="daily-chart"
          onMouseMove={point}
          onMouseLeave={() => setTip("")}
          dangerouslySetInnerHTML={{ __html: drawing.markup }}
        />
        <div />
        <div class="x-axis">
          {drawing.days.map((d) => (
            <span key={d.text} style={{ left: `${d.at}%` }}>
              {d.text}
            </span>
          ))}
        </div>
      </div>
      <p class="chart-tip muted" aria-hidden="true">
        {tip || "Point at a bar for its figure."}
      </p>
      <figcaption>
        <ul class="legend" data-testid="chart-legend">
          {labels.map((l, i) => (
            <li key={l} data-testid="legend-item">
              <span class={`swatch s${i}`} aria-hidden="true" />
              {l}
            </li>
          ))}
        </ul>
        <p class="muted">
          Each day: left, lighter, {props.previousName ?? "the previous period"}; right, {props.currentName}.
        </p>
      </figcaption>
    </figure>
  );
}
