import { decodeEventLog, type DecodeEventLogReturnType, type Hex } from "viem";
import { transferEvent } from "../../chain/erc20-events.js";

/**
 * What a deposit is: a transfer identified by its content within its transaction. A log index
 * is its place in a block, and shifts when the transaction is mined again behind other logs; the
 * content does not. Identical transfers in one transaction (same token, from, to and value) are
 * told apart by their order among themselves, which no other transaction can change.
 */
export type TransferContent = { tokenAddress: string; from: string; to: string; amount: bigint };
export type TransferInTransaction = TransferContent & { logIndex: number; ordinal: number };

const contentKey = (t: TransferContent) =>
  `${t.tokenAddress.toLowerCase()}|${t.from.toLowerCase()}|${t.to.toLowerCase()}|${t.amount}`;

/** The deposit's identity within its transaction, as one comparable string. */
export const identityKey = (t: TransferContent & { ordinal: number }) => `${contentKey(t)}|${t.ordinal}`;

/** Numbers identical transfers of one transaction in log order: the first is ordinal 0. */
export function withOrdinals<T extends TransferContent & { logIndex: number }>(
  transfers: readonly T[],
): (T & { ordinal: number })[] {
  const seen = new Map<string, number>();
  return [...transfers]
    .sort((a, b) => a.logIndex - b.logIndex)
    .map((t) => {
      const key = contentKey(t);
      const ordinal = seen.get(key) ?? 0;
      seen.set(key, ordinal + 1);
      return { ...t, ordinal };
    });
}

type RawLog = {
  address: string;
  data: Hex;
  topics: readonly Hex[] | [Hex, ...Hex[]] | [];
  logIndex: number | null;
  transactionHash: Hex | null;
};

/**
 * Every ERC-20 Transfer among one transaction's logs (of any token: the token is part of the
 * content), with its ordinal. Logs of other transactions in the same list are left out.
 */
export function transfersOfTransaction(logs: readonly RawLog[], txHash: string): TransferInTransaction[] {
  const transfers: (TransferContent & { logIndex: number })[] = [];
  for (const log of logs) {
    if (log.transactionHash?.toLowerCase() !== txHash.toLowerCase() || log.logIndex === null) continue;
    let decoded: DecodeEventLogReturnType<[typeof transferEvent]>;
    try {
      decoded = decodeEventLog({ abi: [transferEvent], data: log.data, topics: log.topics as [Hex, ...Hex[]] });
    } catch {
      continue; // not an ERC-20 Transfer (another event, or an ERC-721 Transfer with three indexed topics)
    }
    transfers.push({
      tokenAddress: log.address.toLowerCase(),
      from: decoded.args.from.toLowerCase(),
      to: decoded.args.to.toLowerCase(),
      amount: decoded.args.value,
      logIndex: log.logIndex,
    });
  }
  return withOrdinals(transfers);
}
