import { getAddress, keccak256, toHex, type Address, type Hex } from "viem";
import { depositFactoryReadAbi } from "../../chain/erc20-events.js";
import { BillingError } from "../../errors.js";
import type { MaybeChainContext } from "./context.js";

/** Deterministic per organization: the same org always gets the same address, on any replica. */
export function depositSalt(orgId: string): Hex {
  return keccak256(toHex(`hanzo-billing:deposit:${orgId}`));
}

export type DepositAddress = { orgId: string; chainId: number; address: Address; factory: Address; salt: Hex };

/**
 * The org's CREATE2 deposit address, asked of the factory (a view call) the first time and
 * remembered, so the indexer scan can match transfers to it. Valid before any forwarder exists.
 */
export async function depositAddressFor(ctx: MaybeChainContext, input: { orgId: string }): Promise<DepositAddress> {
  const { sql, chain, config } = ctx;
  const { orgId } = input;
  const [known] = await sql<{ chain_id: number; address: string; factory_address: string; salt: Hex }[]>`
    select chain_id, address, factory_address, salt from deposit_addresses where org_id = ${orgId}`;
  if (known)
    return {
      orgId,
      chainId: known.chain_id,
      address: getAddress(known.address),
      factory: getAddress(known.factory_address),
      salt: known.salt,
    };
  if (!config.DEPOSIT_FACTORY_ADDRESS || !chain) {
    throw new BillingError(
      "not_configured",
      "HUSD deposits are not configured on this deployment (DEPOSIT_FACTORY_ADDRESS)",
    );
  }
  const [org] = await sql`select 1 from organizations where id = ${orgId}`;
  if (!org) throw new BillingError("not_found", `no organization ${orgId}`);
  const salt = depositSalt(orgId);
  let address: Address;
  try {
    address = await chain.readContract({
      address: config.DEPOSIT_FACTORY_ADDRESS as Address,
      abi: depositFactoryReadAbi,
      functionName: "predictAddress",
      args: [salt],
    });
  } catch (err) {
    throw new BillingError(
      "upstream_unavailable",
      "could not reach the chain to compute the deposit address; try again",
      { cause: err },
    );
  }
  await sql`
    insert into deposit_addresses (org_id, chain_id, factory_address, salt, address)
    values (${orgId}, ${config.CHAIN_ID}, ${config.DEPOSIT_FACTORY_ADDRESS.toLowerCase()}, ${salt}, ${address.toLowerCase()})
    on conflict (org_id) do nothing`;
  return { orgId, chainId: config.CHAIN_ID, address, factory: getAddress(config.DEPOSIT_FACTORY_ADDRESS), salt };
}
