/**
 * The Cost view's daily bars as exact figures: which series the bars are split into, each day's
 * amount per series in nano-USD (bigint, summed exactly), and the axis in whole cents. Pure, so the
 * chart only turns these into shapes; floats appear there and only for drawing.
 */
import { usd } from "./format.ts";

type Costed = { cost_nano_usd: string };

/** How many series a bar is split into at most; past that the smallest share one "Other". */
export const MAX_SERIES = 10;

export type SeriesPlan = {
  /** The legend, in stacking order (bottom first). */
  labels: string[];
  /** The series of a group's label; labels not listed are the last series ("Other"). */
  indexOf: (label: string) => number;
};

/**
 * The series: the grouping's members by their cost in the shown period, then those only in the
 * previous one by theirs, so the largest sit at the bottom of every bar and keep their colour in both.
 */
export function planSeries<G extends Costed>(current: G[], previous: G[], labelOf: (g: G) => string): SeriesPlan {
  const rank = (groups: G[]) =>
    groups
      .map((g) => ({ label: labelOf(g), nano: BigInt(g.cost_nano_usd) }))
      .sort((a, b) => (b.nano > a.nano ? 1 : b.nano < a.nano ? -1 : 0))
      .map((g) => g.label);
  const order = [...new Set([...rank(current), ...rank(previous)])];
  const kept = order.length > MAX_SERIES ? order.slice(0, MAX_SERIES - 1) : order;
  const labels = order.length > kept.length ? [...kept, `Other (${order.length - kept.length} more)`] : kept;
  const index = new Map(kept.map((l, i) => [l, i]));
  const other = labels.length - 1;
  return { labels, indexOf: (label) => index.get(label) ?? other };
}

export type StackedDay = {
  date: string;
  /** The API's exact total of the day, as it gave it and as a bigint. */
  total: string;
  totalNano: bigint;
  /** Per series, the exact sum of the day's groups in it (0n where none). */
  amounts: bigint[];
};

/** Each day split into the plan's series: one pass over the days and their groups. */
export function stackDays<G extends Costed>(
  days: { date: string; cost_nano_usd: string; groups?: G[] }[],
  plan: SeriesPlan,
  labelOf: (g: G) => string,
): StackedDay[] {
  const n = plan.labels.length;
  return days.map((d) => {
    const amounts: bigint[] = new Array(n).fill(0n);
    for (const g of d.groups ?? []) {
      const i = plan.indexOf(labelOf(g));
      amounts[i] = (amounts[i] ?? 0n) + BigInt(g.cost_nano_usd);
    }
    return { date: d.date, total: d.cost_nano_usd, totalNano: BigInt(d.cost_nano_usd), amounts };
  });
}

const NANO_PER_CENT = 10_000_000n;

/**
 * The y axis: a round step in whole cents (1, 2 or 5 × a power of ten) giving about four
 * gridlines over the largest day, and each gridline's label in dollars and cents.
 */
export function axis(largestDayNano: bigint): { topNano: bigint; ticks: { nano: bigint; label: string }[] } {
  const cents = largestDayNano > 0n ? (largestDayNano + NANO_PER_CENT - 1n) / NANO_PER_CENT : 1n;
  const raw = (cents + 3n) / 4n;
  let power = 1n;
  while (power * 10n <= raw) power *= 10n;
  const step = [1n, 2n, 5n, 10n].map((m) => m * power).find((s) => s >= raw) ?? power * 10n;
  const steps = (cents + step - 1n) / step;
  const ticks = Array.from({ length: Number(steps) + 1 }, (_, i) => {
    const nano = BigInt(i) * step * NANO_PER_CENT;
    return { nano, label: usd(nano).replace(/\.00$/, "") };
  });
  return { topNano: steps * step * NANO_PER_CENT, ticks };
}
