import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import { depositAddressFor } from "../../../billing/deposits/addresses.js";
import { billingContext, type AppEnv } from "../../context.js";
import { requiresKey } from "../access.js";
import { principalOrgId } from "../../middleware/auth.js";
import { errorResponses, jsonResponse } from "../../schemas.js";

export const DepositAddressResponse = z
  .object({
    address: z.string(),
    chain_id: z.number(),
    token_address: z.string(),
    token_symbol: z.literal("HUSD"),
    token_decimals: z.number(),
    minimum_base_units: z.string(),
    finality: z.string(),
    chain: z
      .object({
        name: z.string().openapi({ example: "Hanzo" }),
        rpc_urls: z.array(z.string()).openapi({ description: "Public JSON-RPC URLs; empty when none is published" }),
        block_explorer_urls: z.array(z.string()),
        native_currency: z.object({ name: z.string(), symbol: z.string(), decimals: z.number().int() }),
      })
      .openapi({
        description:
          "The chain as a wallet adds it (EIP-3085 wallet_addEthereumChain): what a wallet that does not know chain_id needs",
      }),
  })
  .openapi("HusdDepositAddress");
export type DepositAddressResponse = z.infer<typeof DepositAddressResponse>;

export const getDepositAddressRoute = createRoute({
  operationId: "getDepositAddress",
  ...requiresKey({ scope: "org", area: "husd" }),
  method: "get",
  path: "/v1/billing/husd/deposit-address",
  summary: "The organization's HUSD deposit address",
  responses: {
    200: jsonResponse(DepositAddressResponse, "Where to send HUSD"),
    ...errorResponses(401, 403, 503),
  },
});

export function registerGetDepositAddress(app: OpenAPIHono<AppEnv>) {
  app.openapi(getDepositAddressRoute, async (c) => {
    const { config } = c.get("deps");
    const a = await depositAddressFor(billingContext(c.get("deps")), { orgId: principalOrgId(c) });
    const finality = config.FINALITY_REQUIRE_FINALIZED_TAG
      ? `credited once the transfer's block is at or below the chain's finalized block and at least ${config.FINALITY_CONFIRMATIONS} blocks deep`
      : `credited once the transfer's block is at least ${config.FINALITY_CONFIRMATIONS} blocks deep`;
    return c.json(
      {
        address: a.address,
        chain_id: a.chainId,
        token_address: config.HUSD_ADDRESS,
        token_symbol: "HUSD" as const,
        token_decimals: config.HUSD_DECIMALS,
        minimum_base_units: config.HUSD_DUST_MINIMUM,
        finality,
        chain: {
          name: config.CHAIN_NAME,
          rpc_urls: config.CHAIN_PUBLIC_RPC_URL ? [config.CHAIN_PUBLIC_RPC_URL] : [],
          block_explorer_urls: config.CHAIN_EXPLORER_URL ? [config.CHAIN_EXPLORER_URL] : [],
          native_currency: { name: config.CHAIN_NAME, symbol: config.CHAIN_NATIVE_SYMBOL, decimals: 18 },
        },
      },
      200,
    );
  });
}
