import {
  encodeErrorResult,
  getAddress,
  getContractAddress,
  keccak256,
  parseEventLogs,
  parseUnits,
  stringToHex,
  zeroAddress,
  type Address,
  type Hash,
  type Hex,
} from "viem";
import { beforeEach, describe, expect } from "vitest";
import {
  depositFactoryAbi,
  depositFactoryBytecode,
  depositForwarderAbi,
  depositForwarderBytecode,
  husdAbi,
  husdBytecode,
} from "../../abis/index.js";
import { anvilAccounts, deployContract, snapshot, type TestClients } from "../support/chain.js";
import { type AnvilContext, anvilTest } from "../support/chain-fixtures.js";

const [owner, payer, stranger, , , , , , newTreasury, treasury] = anvilAccounts;
const saltFor = (orgId: string): Hex => keccak256(stringToHex(orgId));

/** The contracts deployed once for the file, and what the tests do with them. */
async function deploy(c: TestClients) {
  const mined = async (hash: Promise<Hash>) => {
    const receipt = await c.publicClient.waitForTransactionReceipt({ hash: await hash, pollingInterval: 50 });
    expect(receipt.status).toBe("success");
    return receipt;
  };
  const balanceOf = (token: Address, who: Address) =>
    c.publicClient.readContract({ address: token, abi: husdAbi, functionName: "balanceOf", args: [who] });
  const predict = (salt: Hex) =>
    c.publicClient.readContract({
      address: factory,
      abi: depositFactoryAbi,
      functionName: "predictAddress",
      args: [salt],
    });
  const pay = (token: Address, to: Address, amount: bigint) =>
    mined(
      c.walletClient.writeContract({
        account: payer!,
        address: token,
        abi: husdAbi,
        functionName: "transfer",
        args: [to, amount],
      }),
    );
  const sweep = async (salt: Hex, token: Address) => {
    const receipt = await mined(
      c.walletClient.writeContract({
        account: owner!,
        address: factory,
        abi: depositFactoryAbi,
        functionName: "sweep",
        args: [salt, token],
      }),
    );
    const events = parseEventLogs({ abi: depositFactoryAbi, logs: receipt.logs });
    return {
      deployed: events.flatMap((e) => (e.eventName === "ForwarderDeployed" ? [e.args] : [])),
      swept: events.flatMap((e) => (e.eventName === "Swept" ? [e.args] : [])),
    };
  };
  const husd = getAddress(await deployContract(c, { abi: husdAbi, bytecode: husdBytecode, args: [owner!.address] }));
  const foreign = getAddress(await deployContract(c, { abi: husdAbi, bytecode: husdBytecode, args: [owner!.address] }));
  const factory = getAddress(
    await deployContract(c, {
      abi: depositFactoryAbi,
      bytecode: depositFactoryBytecode,
      args: [treasury!.address, owner!.address],
    }),
  );
  for (const token of [husd, foreign]) {
    await mined(
      c.walletClient.writeContract({
        account: owner!,
        address: token,
        abi: husdAbi,
        functionName: "mint",
        args: [payer!.address, parseUnits("1000", 18)],
      }),
    );
  }
  return { c, husd, foreign, factory, mined, balanceOf, predict, pay, sweep };
}

/** `deployed`: HUSD, a foreign ERC-20 (any token sent to a deposit address by mistake) and the factory, 1,000 of each token minted to the payer. */
const it = anvilTest.extend<{ deployed: Awaited<ReturnType<typeof deploy>> }>({
  deployed: [async ({ clients }, use) => use(await deploy(clients)), { scope: "file" }],
});

describe("DepositFactory", () => {
  // Each test starts from the chain as deployed, and is reverted after.
  beforeEach<AnvilContext & { deployed: Awaited<ReturnType<typeof deploy>> }>(({ deployed }) => snapshot(deployed.c));

  it("is owned by the owner it was constructed with and points at the treasury", async ({
    deployed: { c, factory },
  }) => {
    expect(await c.publicClient.readContract({ address: factory, abi: depositFactoryAbi, functionName: "owner" })).toBe(
      owner!.address,
    );
    expect(
      await c.publicClient.readContract({ address: factory, abi: depositFactoryAbi, functionName: "treasury" }),
    ).toBe(treasury!.address);
  });

  it("predicts the CREATE2 address off chain too, distinct per salt, with no code before the first sweep", async ({
    deployed: { c, factory, predict },
  }) => {
    const salt = saltFor("org_a");
    const predicted = await predict(salt);
    // The backend can derive deposit addresses without an RPC call: same formula, same init code.
    expect(predicted).toBe(
      getContractAddress({ opcode: "CREATE2", from: factory, salt, bytecode: depositForwarderBytecode }),
    );
    expect(await predict(saltFor("org_b"))).not.toBe(predicted);
    expect(await c.publicClient.getCode({ address: predicted })).toBeUndefined();
  });

  it("sweeps HUSD sent to the predicted address before deployment into the treasury, deploying the forwarder there", async ({
    deployed: { c, husd, balanceOf, predict, pay, sweep },
  }) => {
    const salt = saltFor("org_a");
    const predicted = await predict(salt);
    await pay(husd, predicted, parseUnits("25", 18));
    expect(await balanceOf(husd, predicted)).toBe(parseUnits("25", 18));

    const { deployed, swept } = await sweep(salt, husd);
    expect(deployed).toEqual([{ salt, forwarder: predicted }]);
    expect(swept).toEqual([{ salt, forwarder: predicted, token: husd, amount: parseUnits("25", 18) }]);
    expect(await c.publicClient.getCode({ address: predicted })).toMatch(/^0x[0-9a-f]{2,}$/);
    expect(await balanceOf(husd, predicted)).toBe(0n);
    expect(await balanceOf(husd, treasury!.address)).toBe(parseUnits("25", 18));
  });

  it("returns the swept amount to a caller that simulates first", async ({
    deployed: { c, husd, factory, predict, pay },
  }) => {
    const salt = saltFor("org_a");
    await pay(husd, await predict(salt), 123n);
    const { result } = await c.publicClient.simulateContract({
      account: owner!,
      address: factory,
      abi: depositFactoryAbi,
      functionName: "sweep",
      args: [salt, husd],
    });
    expect(result).toBe(123n);
  });

  it("sweeping twice works: the second sweep deploys nothing and moves only what arrived since", async ({
    deployed: { husd, balanceOf, predict, pay, sweep },
  }) => {
    const salt = saltFor("org_a");
    const predicted = await predict(salt);
    await pay(husd, predicted, 10n);
    expect((await sweep(salt, husd)).deployed).toHaveLength(1);

    await pay(husd, predicted, 7n); // the forwarder is deployed now; a plain transfer still lands
    const second = await sweep(salt, husd);
    expect(second.deployed).toEqual([]);
    expect(second.swept).toEqual([{ salt, forwarder: predicted, token: husd, amount: 7n }]);
    expect(await balanceOf(husd, treasury!.address)).toBe(17n);
  });

  it("sweeping an empty address deploys it if needed and emits Swept with 0", async ({
    deployed: { husd, balanceOf, predict, sweep },
  }) => {
    const salt = saltFor("org_empty");
    const predicted = await predict(salt);
    const first = await sweep(salt, husd);
    expect(first.deployed).toEqual([{ salt, forwarder: predicted }]);
    expect(first.swept).toEqual([{ salt, forwarder: predicted, token: husd, amount: 0n }]);

    const again = await sweep(salt, husd);
    expect(again.deployed).toEqual([]);
    expect(again.swept).toEqual([{ salt, forwarder: predicted, token: husd, amount: 0n }]);
    expect(await balanceOf(husd, treasury!.address)).toBe(0n);
  });

  it("recovers a foreign ERC-20 without touching the HUSD held at the same address", async ({
    deployed: { husd, foreign, balanceOf, predict, pay, sweep },
  }) => {
    const salt = saltFor("org_a");
    const predicted = await predict(salt);
    await pay(husd, predicted, 500n);
    await pay(foreign, predicted, 9n);

    const { swept } = await sweep(salt, foreign);
    expect(swept).toEqual([{ salt, forwarder: predicted, token: foreign, amount: 9n }]);
    expect(await balanceOf(foreign, treasury!.address)).toBe(9n);
    expect(await balanceOf(husd, predicted)).toBe(500n);
    expect(await balanceOf(husd, treasury!.address)).toBe(0n);

    expect((await sweep(salt, husd)).swept[0]?.amount).toBe(500n);
  });

  it("only the owner can sweep", async ({ deployed: { c, husd, factory, balanceOf, predict, pay } }) => {
    const salt = saltFor("org_a");
    const predicted = await predict(salt);
    await pay(husd, predicted, 5n);
    await expect(
      c.walletClient.writeContract({
        account: stranger!,
        address: factory,
        abi: depositFactoryAbi,
        functionName: "sweep",
        args: [salt, husd],
      }),
    ).rejects.toThrow(/OwnableUnauthorizedAccount/);
    expect(await c.publicClient.getCode({ address: predicted })).toBeUndefined();
    expect(await balanceOf(husd, predicted)).toBe(5n);
  });

  it("a deployed forwarder obeys only its factory", async ({
    deployed: { c, husd, balanceOf, predict, pay, sweep },
  }) => {
    const salt = saltFor("org_a");
    const predicted = await predict(salt);
    await pay(husd, predicted, 5n);
    await sweep(salt, husd);
    await pay(husd, predicted, 3n);
    for (const account of [stranger!, owner!]) {
      await expect(
        c.walletClient.writeContract({
          account,
          address: predicted,
          abi: depositForwarderAbi,
          functionName: "sweep",
          args: [husd, account.address],
        }),
      ).rejects.toThrow(/NotFactory/);
    }
    expect(await balanceOf(husd, predicted)).toBe(3n);
  });

  it("setTreasury is owner-only, refuses the zero address, and redirects later sweeps", async ({
    deployed: { c, husd, factory, mined, balanceOf, predict, pay, sweep },
  }) => {
    const setTreasury = (account: typeof owner, to: Address) =>
      c.walletClient.writeContract({
        account: account!,
        address: factory,
        abi: depositFactoryAbi,
        functionName: "setTreasury",
        args: [to],
      });
    await expect(setTreasury(stranger, newTreasury!.address)).rejects.toThrow(/OwnableUnauthorizedAccount/);
    await expect(setTreasury(owner, zeroAddress)).rejects.toThrow(/ZeroTreasury/);

    const receipt = await mined(setTreasury(owner, newTreasury!.address));
    const [changed] = parseEventLogs({ abi: depositFactoryAbi, logs: receipt.logs, eventName: "TreasuryChanged" });
    expect(changed?.args).toEqual({ previousTreasury: treasury!.address, newTreasury: newTreasury!.address });

    const salt = saltFor("org_a");
    await pay(husd, await predict(salt), 4n);
    await sweep(salt, husd);
    expect(await balanceOf(husd, newTreasury!.address)).toBe(4n);
    expect(await balanceOf(husd, treasury!.address)).toBe(0n);
  });

  it("cannot be constructed with a zero treasury", async ({ deployed: { c } }) => {
    // viem does not decode constructor reverts by name, so match the error's selector.
    const selector = encodeErrorResult({ abi: depositFactoryAbi, errorName: "ZeroTreasury" });
    await expect(
      deployContract(c, {
        abi: depositFactoryAbi,
        bytecode: depositFactoryBytecode,
        args: [zeroAddress, owner!.address],
      }),
    ).rejects.toThrow(new RegExp(selector));
  });
});
