import { randomBytes } from "node:crypto";

const ALPHABET = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

// One syscall fills many ids: the hot path mints several ids per request.
let pool = Buffer.alloc(0);
let offset = 0;
function nextByte(): number {
  if (offset >= pool.length) {
    pool = randomBytes(8192);
    offset = 0;
  }
  const byte = pool[offset++];
  if (byte === undefined) throw new Error("random byte pool exhausted");
  return byte;
}

const ALPHABET_CODES = Buffer.from(ALPHABET, "latin1");
let scratch = Buffer.allocUnsafe(64);

/** Random base62 string; rejection sampling keeps every character equally likely. */
export function randomBase62(length: number): string {
  // Characters go into a scratch buffer and become one string at the end: appending them one
  // by one made a string per character, and the metering hot path mints thousands of ids a second.
  if (scratch.length < length) scratch = Buffer.allocUnsafe(length);
  let n = 0;
  while (n < length) {
    const byte = nextByte();
    if (byte < 248) {
      const code = ALPHABET_CODES[byte % 62];
      if (code === undefined) throw new Error("base62 alphabet has no character for this byte");
      scratch[n++] = code;
    }
  }
  return scratch.toString("latin1", 0, length);
}

export type IdPrefix =
  | "org"
  | "key"
  | "txn"
  | "grant"
  | "hold"
  | "use"
  | "inv"
  | "dep"
  | "pm"
  | "req"
  | "evt"
  | "alert"
  | "adj"
  | "cn"
  | "top"
  | "atp"
  | "rnw"
  | "ntc"
  | "wh"
  | "dlv"
  | "promo"
  | "prr"
  | "bud"
  | "rfl"
  | "psess";

/** IDs carry their kind (`org_…`, `hold_…`) so a misplaced one is obvious in logs and errors. */
export function newId(prefix: IdPrefix): string {
  return `${prefix}_${randomBase62(20)}`;
}
