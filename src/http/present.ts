import { formatUsd } from "../ledger/money.js";

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
