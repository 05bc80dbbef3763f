import { getAddress, parseEventLogs, parseSignature, parseUnits, type Address, type Hash, type Hex } from "viem";
import { beforeEach, describe, expect } from "vitest";
import { husdAbi, husdBytecode } from "../../abis/index.js";
import { anvilAccounts, deployContract, snapshot, type TestClients } from "../support/chain.js";
import { type AnvilContext, anvilTest } from "../support/chain-fixtures.js";

const [owner, alice, bob, carol] = anvilAccounts;

/** HUSD deployed at `husd` on `c`'s chain, and what the tests do with it. */
function husdToken(c: TestClients, husd: Address) {
  const mined = async (hash: Promise<Hash>) => {
    const receipt = await c.publicClient.waitForTransactionReceipt({ hash: await hash, pollingInterval: 50 });
    expect(receipt.status).toBe("success");
    return receipt;
  };
  const balanceOf = (who: Address) =>
    c.publicClient.readContract({ address: husd, abi: husdAbi, functionName: "balanceOf", args: [who] });
  // Alice signs off chain; Bob (the spender) submits the permit and pulls the tokens, so Alice
  // never sends a transaction: the flow wallets use.
  const signPermit = async (value: bigint, deadline: bigint, signer = alice!) => {
    const domain = await c.publicClient.getEip712Domain({ address: husd });
    const nonce = await c.publicClient.readContract({
      address: husd,
      abi: husdAbi,
      functionName: "nonces",
      args: [signer.address],
    });
    const signature = await signer.signTypedData({
      domain: {
        name: domain.domain.name,
        version: domain.domain.version,
        chainId: domain.domain.chainId,
        verifyingContract: husd,
      },
      types: {
        Permit: [
          { name: "owner", type: "address" },
          { name: "spender", type: "address" },
          { name: "value", type: "uint256" },
          { name: "nonce", type: "uint256" },
          { name: "deadline", type: "uint256" },
        ],
      },
      primaryType: "Permit",
      message: { owner: signer.address, spender: bob!.address, value, nonce, deadline },
    });
    return { signature, args: [signer.address, bob!.address, value, deadline, signature] as const };
  };
  const permit = ([owner, spender, value, deadline, signature]: readonly [Address, Address, bigint, bigint, Hex]) => {
    const { r, s, yParity } = parseSignature(signature);
    return c.walletClient.writeContract({
      account: bob!,
      address: husd,
      abi: husdAbi,
      functionName: "permit",
      args: [owner, spender, value, deadline, 27 + yParity, r, s],
    });
  };
  const farDeadline = () => BigInt(Math.floor(Date.now() / 1000) + 3600);
  return { c, husd, mined, balanceOf, signPermit, permit, farDeadline };
}

/** `token`: HUSD deployed once for the file on its anvil. */
const it = anvilTest.extend<{ token: ReturnType<typeof husdToken> }>({
  token: [
    async ({ clients }, use) => {
      const husd = getAddress(
        await deployContract(clients, { abi: husdAbi, bytecode: husdBytecode, args: [owner!.address] }),
      );
      await use(husdToken(clients, husd));
    },
    { scope: "file" },
  ],
});

describe("HUSD (local stand-in)", () => {
  // Each test starts from the chain as deployed, with 100 HUSD minted to Alice, and is reverted after.
  beforeEach<AnvilContext & { token: ReturnType<typeof husdToken> }>(async ({ token: { c, husd, mined } }) => {
    const revert = await snapshot(c);
    await mined(
      c.walletClient.writeContract({
        address: husd,
        abi: husdAbi,
        functionName: "mint",
        args: [alice!.address, parseUnits("100", 18)],
      }),
    );
    return revert;
  });

  it("is Hanzo USD / HUSD with 18 decimals, owned by its deployer", async ({ token: { c, husd } }) => {
    const read = <F extends "name" | "symbol" | "decimals" | "owner" | "totalSupply">(functionName: F) =>
      c.publicClient.readContract({ address: husd, abi: husdAbi, functionName });
    expect(await read("name")).toBe("Hanzo USD");
    expect(await read("symbol")).toBe("HUSD");
    expect(await read("decimals")).toBe(18);
    expect(await read("owner")).toBe(owner!.address);
    expect(await read("totalSupply")).toBe(parseUnits("100", 18));
  });

  it("transfers move balances and emit Transfer", async ({ token: { c, husd, mined, balanceOf } }) => {
    const receipt = await mined(
      c.walletClient.writeContract({
        account: alice!,
        address: husd,
        abi: husdAbi,
        functionName: "transfer",
        args: [bob!.address, parseUnits("12.5", 18)],
      }),
    );
    const [log] = parseEventLogs({ abi: husdAbi, logs: receipt.logs, eventName: "Transfer" });
    expect(log?.args).toEqual({ from: alice!.address, to: bob!.address, value: parseUnits("12.5", 18) });
    expect(await balanceOf(alice!.address)).toBe(parseUnits("87.5", 18));
    expect(await balanceOf(bob!.address)).toBe(parseUnits("12.5", 18));
  });

  it("refuses a transfer above the balance", async ({ token: { c, husd } }) => {
    await expect(
      c.walletClient.writeContract({
        account: bob!,
        address: husd,
        abi: husdAbi,
        functionName: "transfer",
        args: [alice!.address, 1n],
      }),
    ).rejects.toThrow(/ERC20InsufficientBalance/);
  });

  it("only the owner can mint", async ({ token: { c, husd, mined, balanceOf } }) => {
    await expect(
      c.walletClient.writeContract({
        account: alice!,
        address: husd,
        abi: husdAbi,
        functionName: "mint",
        args: [alice!.address, 1n],
      }),
    ).rejects.toThrow(/OwnableUnauthorizedAccount/);
    await mined(
      c.walletClient.writeContract({
        account: owner!,
        address: husd,
        abi: husdAbi,
        functionName: "mint",
        args: [bob!.address, 7n],
      }),
    );
    expect(await balanceOf(bob!.address)).toBe(7n);
  });

  describe("permit (EIP-2612)", () => {
    it("uses the domain Hanzo USD, version 1, this chain", async ({ token: { c, husd } }) => {
      const { domain } = await c.publicClient.getEip712Domain({ address: husd });
      expect(domain).toMatchObject({ name: "Hanzo USD", version: "1", chainId: c.chain.id, verifyingContract: husd });
    });

    it("a signed permit lets the spender transferFrom, once", async ({
      token: { c, husd, mined, balanceOf, signPermit, permit, farDeadline },
    }) => {
      const value = parseUnits("30", 18);
      const { args } = await signPermit(value, farDeadline());
      const receipt = await mined(permit(args));
      const [approval] = parseEventLogs({ abi: husdAbi, logs: receipt.logs, eventName: "Approval" });
      expect(approval?.args).toEqual({ owner: alice!.address, spender: bob!.address, value });
      expect(
        await c.publicClient.readContract({
          address: husd,
          abi: husdAbi,
          functionName: "nonces",
          args: [alice!.address],
        }),
      ).toBe(1n);

      await mined(
        c.walletClient.writeContract({
          account: bob!,
          address: husd,
          abi: husdAbi,
          functionName: "transferFrom",
          args: [alice!.address, carol!.address, value],
        }),
      );
      expect(await balanceOf(carol!.address)).toBe(value);
      expect(await balanceOf(alice!.address)).toBe(parseUnits("70", 18));
      expect(
        await c.publicClient.readContract({
          address: husd,
          abi: husdAbi,
          functionName: "allowance",
          args: [alice!.address, bob!.address],
        }),
      ).toBe(0n);

      // The nonce moved, so the same signature no longer recovers to Alice.
      await expect(permit(args)).rejects.toThrow(/ERC2612InvalidSigner/);
    });

    it("rejects an expired permit and one signed by someone else", async ({
      token: { signPermit, permit, farDeadline },
    }) => {
      const expired = await signPermit(1n, 1n);
      await expect(permit(expired.args)).rejects.toThrow(/ERC2612ExpiredSignature/);

      // Carol signs a permit, then it is submitted as if Alice had signed it.
      const deadline = farDeadline();
      const forged = await signPermit(1n, deadline, carol!);
      await expect(permit([alice!.address, bob!.address, 1n, deadline, forged.signature])).rejects.toThrow(
        /ERC2612InvalidSigner/,
      );
    });
  });
});
