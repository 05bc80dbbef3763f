import { MAX_NANO_USD } from "../../ledger/money.js";

/**
 * HUSD base units to nano-USD (1 HUSD = 1 USD). With 18 decimals, 1 nano-USD is 10^9 base
 * units; anything below that is rounded down and not credited (and shown as such). Returns null
 * when the amount cannot be represented in the ledger (it would exceed its bigint range).
 */
export function baseUnitsToNanoUsd(amount: bigint, decimals: number): bigint | null {
  const nano = decimals >= 9 ? amount / 10n ** BigInt(decimals - 9) : amount * 10n ** BigInt(9 - decimals);
  return nano > MAX_NANO_USD ? null : nano;
}

/** Exact decimal string of a token amount: 1500000000000000000n, 18 → "1.5". */
export function formatTokenAmount(amount: bigint, decimals: number): string {
  const scale = 10n ** BigInt(decimals);
  const fraction = (amount % scale).toString().padStart(decimals, "0").replace(/0+$/, "");
  return `${amount / scale}${fraction ? `.${fraction}` : ""}`;
}
