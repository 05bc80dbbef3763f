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
  return pool[offset++]!;
}

/** Random base62 string; rejection sampling keeps every character equally likely. */
export function randomBase62(length: number): string {
  let out = "";
  while (out.length < length) {
    const byte = nextByte();
    if (byte < 248) out += ALPHABET[byte % 62];
  }
  return out;
}

export type IdPrefix = "org" | "key" | "txn" | "grant" | "hold" | "use" | "inv" | "dep" | "pm" | "req" | "evt" | "alert" | "adj";

/** IDs carry their kind (`org_…`, `hold_…`) so a misplaced one is obvious in logs and errors. */
export function newId(prefix: IdPrefix): string {
  return `${prefix}_${randomBase62(20)}`;
}
