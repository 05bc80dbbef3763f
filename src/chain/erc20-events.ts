import { parseAbiItem } from "viem";

/** The ERC-20 Transfer event: the only log a deposit is made of. */
export const transferEvent = parseAbiItem("event Transfer(address indexed from, address indexed to, uint256 value)");

export const depositFactoryReadAbi = [
  {
    type: "function",
    name: "predictAddress",
    stateMutability: "view",
    inputs: [{ name: "salt", type: "bytes32" }],
    outputs: [{ name: "", type: "address" }],
  },
] as const;
