/**
 * Money is integer nano-USD (1e-9 USD) held in a bigint; decimals travel as strings. Nothing
 * here ever touches a float except formatUsdNumber, which exists only for the seed's JSON shape.
 */
export const NANO_PER_USD = 1_000_000_000n;
export const USD_SCALE = 9;
/** PostgreSQL bigint holds ±9.2e18 nano-USD (±9.2 billion USD); inputs stay far below that. */
export const MAX_NANO_USD = 9_000_000_000_000_000_000n;

export class MoneyError extends Error {
  override name = "MoneyError";
}

const DECIMAL = /^(-)?(\d+)(?:\.(\d+))?$/;

/** Parses a USD decimal string ("12.50", "0.000000001") into exact nano-USD. */
export function parseUsd(text: string): bigint {
  const match = DECIMAL.exec(text.trim());
  if (!match) throw new MoneyError(`"${text}" is not a decimal amount like "12.50"`);
  const [, sign, whole, fraction = ""] = match;
  if (fraction.length > USD_SCALE)
    throw new MoneyError(`"${text}" has more than ${USD_SCALE} decimal places (1 nano-USD is the smallest unit)`);
  if (whole === undefined) throw new MoneyError(`"${text}" has no whole part`);
  const nano = BigInt(whole) * NANO_PER_USD + BigInt(fraction.padEnd(USD_SCALE, "0"));
  if (nano > MAX_NANO_USD) throw new MoneyError(`"${text}" is too large`);
  return sign ? -nano : nano;
}

/** Exact decimal string with the fewest digits: 142870000000n → "142.87". */
export function formatUsd(nano: bigint): string {
  const negative = nano < 0n;
  const abs = negative ? -nano : nano;
  const whole = abs / NANO_PER_USD;
  const fraction = (abs % NANO_PER_USD).toString().padStart(USD_SCALE, "0").replace(/0+$/, "");
  return `${negative ? "-" : ""}${whole}${fraction ? `.${fraction}` : ""}`;
}

/**
 * The seed's JSON shape shows USD as numbers (`"balance": 142.87`). Going through the exact
 * decimal string gives the double nearest to it, which JSON prints back as the same digits
 * for anything up to 15 significant digits; the exact value is always sent beside it.
 */
export function formatUsdNumber(nano: bigint): number {
  return Number(formatUsd(nano));
}

/** An exact decimal as numerator and power-of-ten scale: "0.0000025" → { units: 25n, scale: 7 }. */
export type Decimal = { units: bigint; scale: number };

export function parseDecimal(text: string): Decimal {
  const match = DECIMAL.exec(text.trim());
  if (!match) throw new MoneyError(`"${text}" is not a decimal number`);
  const [, sign, whole, fraction = ""] = match;
  const units = BigInt(`${whole}${fraction}`);
  return { units: sign ? -units : units, scale: fraction.length };
}

/** a / b rounded half to even (banker's rounding), for b > 0. */
export function divideHalfEven(a: bigint, b: bigint): bigint {
  if (b <= 0n) throw new MoneyError("divisor must be positive");
  let q = a / b; // truncates toward zero
  const r = a % b;
  if (r === 0n) return q;
  const twice = (r < 0n ? -r : r) * 2n;
  const away = a < 0n ? -1n : 1n;
  if (twice > b || (twice === b && q % 2n !== 0n)) q += away;
  return q;
}

/**
 * Cost of `quantity` units at a USD `rate` per unit, in nano-USD, rounded once, half to even.
 * The product is formed exactly first, so no intermediate rounding can accumulate.
 */
export function costNanoUsd(quantity: bigint, rate: string | Decimal): bigint {
  const r = typeof rate === "string" ? parseDecimal(rate) : rate;
  // quantity × units / 10^scale USD = quantity × units × 10^9 / 10^scale nano-USD
  const numerator = quantity * r.units * NANO_PER_USD;
  return divideHalfEven(numerator, 10n ** BigInt(r.scale));
}

/** One amount in the three forms the JSON shows: display number, exact decimal string, nano-USD string. */
export type Usd = { number: number; exact: string; nano: string };

/** Formats once; `number` is the double nearest the exact decimal (see formatUsdNumber). */
export function usd(nano: bigint): Usd {
  const exact = formatUsd(nano);
  return { number: Number(exact), exact, nano: nano.toString() };
}

export type UsdFields<K extends string> = { [P in K]: number } & { [P in `${K}_usd`]: string } & {
  [P in `${K}_nano_usd`]: string;
};

/** `usdFields("amount", n)` → `{ amount, amount_usd, amount_nano_usd }`, in that key order. */
export function usdFields<K extends string>(name: K, nano: bigint): UsdFields<K> {
  const u = usd(nano);
  return { [name]: u.number, [`${name}_usd`]: u.exact, [`${name}_nano_usd`]: u.nano } as UsdFields<K>;
}
