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

const modelText = (v: unknown) => plainText(v, 1, 80);
const idText = (v: unknown) => plainText(v, 1, 64);
const keyText = (v: unknown) => plainText(v, 1, 255);
const projectText = (v: unknown) => typeof v === "string" && PROJECT_PATTERN.test(v);
const ttlSeconds = (v: unknown) => Number.isSafeInteger(v) && (v as number) >= 1 && (v as number) <= 86_400;

/** Checks an optional field: absent, or present and `ok`. */
function optional(fields: Fields, key: string, ok: (v: unknown) => boolean): boolean {
  return !(key in fields) || ok(fields[key]);
}

/** The fields of `AuthorizeRequest` (a test holds this list to the schema's). */
export const AUTHORIZE_FIELDS = new Set([
  "org_id",
  "product",
  "model",
  "estimate",
  "idempotency_key",
  "ttl_seconds",
  "api_key_id",
  "project",
]);

/** `AuthorizeRequest.parse(raw)` for the plain common shape; `undefined` means "ask zod". */
export function quickAuthorizeRequest(raw: unknown): PlainAuthorizeRequest | undefined {
  const f = plainObject(raw);
  if (!f) return undefined;
  for (const key in f) if (!AUTHORIZE_FIELDS.has(key)) return undefined;
  const estimate = plainQuantities(f.estimate);
  if (
    !estimate ||
    !plainText(f.org_id, 1, 64) ||
    !plainText(f.product, 1, 40) ||
    !optional(f, "model", modelText) ||
    !optional(f, "idempotency_key", keyText) ||
    !optional(f, "ttl_seconds", ttlSeconds) ||
    !optional(f, "api_key_id", idText) ||
    !optional(f, "project", projectText)
  ) {
    return undefined;
  }
  return { ...(f as Omit<PlainAuthorizeRequest, "estimate">), estimate };
}

/** The fields of `UsageEvent` (a test holds this list to the schema's). */
export const USAGE_FIELDS = new Set([
  "idempotency_key",
  "org_id",
  "timestamp",
  "product",
  "model",
  "quantities",
  "hold_id",
  "api_key_id",
  "project",
]);

/** `UsageEvent.parse(raw)` for the plain common shape; `undefined` means "ask zod". */
export function quickUsageEvent(raw: unknown): PlainUsageEvent | undefined {
  const f = plainObject(raw);
  if (!f) return undefined;
  for (const key in f) if (!USAGE_FIELDS.has(key)) return undefined;
  const quantities = plainQuantities(f.quantities);
  if (
    !quantities ||
    !plainText(f.idempotency_key, 1, 255) ||
    !plainText(f.org_id, 1, 64) ||
    !plainTimestamp(f.timestamp) ||
    !plainText(f.product, 1, 40) ||
    !optional(f, "model", modelText) ||
    !optional(f, "hold_id", idText) ||
    !optional(f, "api_key_id", idText) ||
    !optional(f, "project", projectText)
  ) {
    return undefined;
  }
  return { ...(f as Omit<PlainUsageEvent, "quantities">), quantities };
}
