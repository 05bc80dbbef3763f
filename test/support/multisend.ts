import solc from "solc";
import { parseAbi, type Abi, type Address, type Hex } from "viem";
import { DevRoles } from "../../src/chain/local-devnet.js";
import type { TestChain } from "./chain-stack.js";

// A test-only helper contract: several ERC-20 transfers in one transaction (as a multisig or
// a payout batch would send them), and a transfer of the sender's whole balance, whose amount
// depends on the chain's state when it is mined (the same signed transaction mined again after a
// reorg can move another amount). Compiled here with the npm solc.
const SOURCE = `// SPDX-License-Identifier: MIT
pragma solidity ^0.8.20;
interface IERC20 {
  function transferFrom(address from, address to, uint256 amount) external returns (bool);
  function balanceOf(address who) external view returns (uint256);
}
contract MultiSend {
  function send(address token, address[] calldata to, uint256[] calldata amounts) external {
    for (uint256 i = 0; i < to.length; i++) require(IERC20(token).transferFrom(msg.sender, to[i], amounts[i]), "transfer failed");
  }
  function sendAll(address token, address to) external {
    require(IERC20(token).transferFrom(msg.sender, to, IERC20(token).balanceOf(msg.sender)), "transfer failed");
  }
}`;

export const multiSendAbi = parseAbi([
  "function send(address token, address[] to, uint256[] amounts)",
  "function sendAll(address token, address to)",
]);

export function compileMultiSend(): { abi: Abi; bytecode: Hex } {
  const input = {
    language: "Solidity",
    sources: { "MultiSend.sol": { content: SOURCE } },
    settings: { outputSelection: { "*": { "*": ["abi", "evm.bytecode.object"] } } },
  };
  const out = JSON.parse(solc.compile(JSON.stringify(input)));
  const c = out.contracts["MultiSend.sol"].MultiSend;
  return { abi: c.abi, bytecode: `0x${c.evm.bytecode.object}` };
}

export async function deployMultiSend(chain: TestChain, account = DevRoles.customer): Promise<Address> {
  const { abi, bytecode } = compileMultiSend();
  const wallet = chain.clients.wallet(account);
  const hash = await wallet.deployContract({ abi, bytecode, args: [] });
  return (await wallet.waitForTransactionReceipt({ hash })).contractAddress!;
}
