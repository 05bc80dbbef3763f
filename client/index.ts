import createClient, { type Client } from "openapi-fetch";
import type { paths } from "./openapi.js";

export type { components, paths } from "./openapi.js";

export type BillingClient = Client<paths>;

/**
 * A typed client of the Hanzo Billing API: `openapi-fetch` over the types that
 * `npm run client:generate` writes from GET /v1/openapi.json, so a path, parameter or body that
 * the API does not document fails to compile. Calls resolve to `{ data, error, response }`:
 * `error` is the `{"error":{…}}` envelope of a 4xx/5xx.
 *
 * `key` is the `hk-…` API key of the scope the operations need (org, gateway or admin); `fetch`
 * replaces the global one (tests pass the in-process app's).
 */
export function createBillingClient(
  baseUrl: string,
  key?: string,
  opts: { fetch?: (request: Request) => Promise<Response> } = {},
): BillingClient {
  return createClient<paths>({ baseUrl, headers: key ? { authorization: `Bearer ${key}` } : {}, ...opts });
}

export {
  GatewayClient,
  GatewayConnectionError,
  GatewayError,
  MAX_GATEWAY_BATCH,
  type AuthorizeRequest,
  type GatewayClientOptions,
  type Hold,
  type SettleUsage,
  type UsageEvent,
  type UsageEventResult,
} from "./gateway.js";
