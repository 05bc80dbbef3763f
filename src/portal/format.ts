/** Money arrives as exact nano-USD strings; it is shown in dollars and cents, never through a float. */
const NANO_PER_CENT = 10_000_000n;

/** "$1,234.56" from nano-USD, rounded half away from zero to the cent; "-$3.10" below zero. */
export function usd(nano: string | bigint | null | undefined): string {
  if (nano === null || nano === undefined) return "—";
  const n = BigInt(nano);
  const negative = n < 0n;
  const abs = negative ? -n : n;
  const cents = (abs + NANO_PER_CENT / 2n) / NANO_PER_CENT;
  const dollars = (cents / 100n).toString().replace(/\B(?=(\d{3})+(?!\d))/g, ",");
  const text = `$${dollars}.${(cents % 100n).toString().padStart(2, "0")}`;
  return negative && cents > 0n ? `-${text}` : text;
}

/** The nano-USD of a decimal USD string the customer typed ("25", "25.5", "25.50"); null when it is not one. */
export function parseUsdInput(text: string): string | null {
  const m = /^\s*\$?\s*(\d{1,9})(?:\.(\d{1,2}))?\s*$/.exec(text);
  if (!m) return null;
  return `${m[1]}.${(m[2] ?? "").padEnd(2, "0")}`;
}

/** Token base units of a decimal amount ("12.5" HUSD with 18 decimals), exactly. */
export function toBaseUnits(text: string, decimals: number): bigint | null {
  const m = /^\s*(\d{1,12})(?:\.(\d+))?\s*$/.exec(text);
  if (!m || (m[2]?.length ?? 0) > decimals) return null;
  return BigInt(m[1] ?? "0") * 10n ** BigInt(decimals) + BigInt((m[2] ?? "").padEnd(decimals, "0") || "0");
}

const dateFormat = new Intl.DateTimeFormat("en", { year: "numeric", month: "short", day: "numeric", timeZone: "UTC" });
const timeFormat = new Intl.DateTimeFormat("en", {
  month: "short",
  day: "numeric",
  hour: "2-digit",
  minute: "2-digit",
  timeZone: "UTC",
  timeZoneName: "short",
});

export const day = (iso: string | null | undefined) => (iso ? dateFormat.format(new Date(iso)) : "—");
export const time = (iso: string | null | undefined) => (iso ? timeFormat.format(new Date(iso)) : "—");

/** "Nov 1 – Nov 30, 2026" for a [start, end) period. */
export function period(start: string, end: string): string {
  const last = new Date(new Date(end).getTime() - 1);
  return `${day(start)} – ${dateFormat.format(last)}`;
}

export const shortHash = (h: string) => (h.length > 14 ? `${h.slice(0, 8)}…${h.slice(-6)}` : h);
