import { TIMESTAMP_END_MS, TIMESTAMP_MIN_MS } from "../../schemas.js";
import { MAX_QUANTITY, METER_NAME, PROJECT_PATTERN } from "./schemas.js";

/*
 * The batch routes check each item of a batch on its own. The gateway sends the same plain
 * shape every time, and zod's parse of it was ~45 % of what the API allocated per item under
 * load, and a good share of its CPU (bench/RESULTS-metering.md, 2026-12-03, seventh machine).
 * These functions accept only that common shape, checked by hand, and answer what zod's parse
 * would; anything else (a field out of the plain form, anything wrong) answers `undefined`, and
 * zod parses the item and words the error. So they may refuse what zod accepts, never the
 * reverse: `test/http/gateway-quick-parse.test.ts` checks that on generated items.
 */

const MAX_QUANTITY_NUMBER = Number(MAX_QUANTITY);
/** A subset of zod's `iso.datetime({ offset: true })`: days 01-28 are in every month of every year. */
const PLAIN_TIMESTAMP =
  /^\d{4}-(?:0[1-9]|1[0-2])-(?:0[1-9]|1\d|2[0-8])T(?:[01]\d|2[0-3]):[0-5]\d:[0-5]\d(?:\.\d{1,9})?(?:Z|[+-](?:[01]\d|2[0-3]):[0-5]\d)$/;

type Fields = Record<string, unknown>;

/** What zod's parse of an `AuthorizeRequest` (authorize.ts) gives; stated here, as the routes import this module. */
export type PlainAuthorizeRequest = {
  org_id: string;
  product: string;
  model?: string;
  estimate: Record<string, bigint>;
  idempotency_key?: string;
  ttl_seconds?: number;
  api_key_id?: string;
  project?: string;
};

/** What zod's parse of a `UsageEvent` (report-usage.ts) gives. */
export type PlainUsageEvent = {
  idempotency_key: string;
  org_id: string;
  timestamp: string;
  product: string;
  model?: string;
  quantities: Record<string, bigint>;
  hold_id?: string;
  api_key_id?: string;
  project?: string;
};

function plainObject(raw: unknown): Fields | undefined {
  if (typeof raw !== "object" || raw === null || Object.getPrototypeOf(raw) !== Object.prototype) return undefined;
  return raw as Fields;
}

/** `safeText(min, max)` on printable ASCII alone: no control character and no surrogate to look for. */
function plainText(v: unknown, min: number, max: number): v is string {
  if (typeof v !== "string" || v.length < min || v.length > max) return false;
  for (let i = 0; i < v.length; i++) {
    const c = v.charCodeAt(i);
    if (c < 0x20 || c > 0x7e) return false;
  }
  return true;
}

/** 1 to 10 meters, each a JSON integer in range (digit strings are left to zod). */
function plainQuantities(raw: unknown): Record<string, bigint> | undefined {
  const q = plainObject(raw);
  if (!q) return undefined;
  const out: Record<string, bigint> = {};
  let meters = 0;
  for (const meter in q) {
    const n = q[meter];
    if (!METER_NAME.test(meter) || typeof n !== "number" || !Number.isSafeInteger(n)) return undefined;
    if (n < 0 || n > MAX_QUANTITY_NUMBER || ++meters > 10) return undefined;
    out[meter] = BigInt(n);
  }
  return meters > 0 ? out : undefined;
}

function plainTimestamp(v: unknown): v is string {
  if (typeof v !== "string" || !PLAIN_TIMESTAMP.test(v)) return false;
  const ms = Date.parse(v);
  return ms >= TIMESTAMP_MIN_MS && ms < TIMESTAMP_END_MS;
}

const idText = (v: unknown) => plainText(v, 1, 64);
const productText = (v: unknown) => plainText(v, 1, 40);
const modelText = (v: unknown) => plainText(v, 1, 80);
const keyText = (v: unknown) => plainText(v, 1, 255);
const projectText = (v: unknown) => typeof v === "string" && PROJECT_PATTERN.test(v);
const ttlSeconds = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 1 && (v as number) <= 86_400;

/**
 * A schema's fields, each with its check and whether the item must have it. The quantities field
 * (`quantities`) is checked and converted to bigints by `plainQuantities` instead.
 */
type Rules<T> = { [K in keyof Required<T>]: { required: boolean; ok: (v: unknown) => boolean } };
const must = (ok: (v: unknown) => boolean) => ({ required: true, ok });
const may = (ok: (v: unknown) => boolean) => ({ required: false, ok });
const converted = must(() => true);

/** `AuthorizeRequest`'s fields (a test holds their names to the schema's). */
export const AUTHORIZE_RULES: Rules<PlainAuthorizeRequest> = {
  org_id: must(idText),
  product: must(productText),
  model: may(modelText),
  estimate: converted,
  idempotency_key: may(keyText),
  ttl_seconds: may(ttlSeconds),
  api_key_id: may(idText),
  project: may(projectText),
};

/** `UsageEvent`'s fields (a test holds their names to the schema's). */
export const USAGE_RULES: Rules<PlainUsageEvent> = {
  idempotency_key: must(keyText),
  org_id: must(idText),
  timestamp: must(plainTimestamp),
  product: must(productText),
  model: may(modelText),
  quantities: converted,
  hold_id: may(idText),
  api_key_id: may(idText),
  project: may(projectText),
};

/** The item as zod's parse would answer it, if it has exactly the plain form `rules` describe. */
function quickParse<T>(raw: unknown, rules: Rules<T>, quantities: keyof T & string): T | undefined {
  const f = plainObject(raw);
  if (!f) return undefined;
  for (const key in f) if (!Object.hasOwn(rules, key)) return undefined;
  for (const key in rules) {
    const rule = rules[key];
    if (key in f ? !rule.ok(f[key]) : rule.required) return undefined;
  }
  const counts = plainQuantities(f[quantities]);
  return counts ? ({ ...f, [quantities]: counts } as T) : undefined;
}

/** `AuthorizeRequest.parse(raw)` for the plain common shape; `undefined` means "ask zod". */
export function quickAuthorizeRequest(raw: unknown): PlainAuthorizeRequest | undefined {
  return quickParse(raw, AUTHORIZE_RULES, "estimate");
}

/** `UsageEvent.parse(raw)` for the plain common shape; `undefined` means "ask zod". */
export function quickUsageEvent(raw: unknown): PlainUsageEvent | undefined {
  return quickParse(raw, USAGE_RULES, "quantities");
}
