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

/**
 * IDs carry their kind (`org_…`, `hold_…`) so a misplaced one is obvious in logs and errors. After
 * the kind come 20 characters: 9 of the time the id was minted (milliseconds since the epoch in
 * base 36, digits and capitals, most significant first: 36^9 ms is 3,200 years) and 11 random
 * base62 ones (65 bits). Ids minted later sort after earlier ones, in byte order and in the usual
 * collations alike (digits before letters, capitals in alphabetical order; mixing cases would
 * sort differently under en_US), so each row of a table keyed by id goes in at the right edge of
 * its index, not at a random leaf: the metering path writes a hold, a usage event and a ledger
 * transaction per request, and random ids cost PostgreSQL 5-14 % more CPU there
 * (bench/RESULTS-metering.md, 2026-12-03, third machine). An id is never a secret (API keys and
 * portal tokens are random alone), so its time may show.
 */
export function newId(prefix: IdPrefix): string {
  return `${prefix}_${timeBase36(Date.now())}${randomBase62(11)}`;
}

const TIME_CHARS = 9;
let lastMs = -1;
let lastTime = "";

/** `ms` as 9 base-36 characters (0-9, A-Z), most significant first; the last one is kept, as ids come in bursts. */
export function timeBase36(ms: number): string {
  if (ms === lastMs) return lastTime;
  let rest = Math.max(0, Math.floor(ms));
  let out = "";
  for (let i = 0; i < TIME_CHARS; i++) {
    out = ALPHABET[rest % 36] + out;
    rest = Math.floor(rest / 36);
  }
  lastMs = ms;
  lastTime = out;
  return out;
}
