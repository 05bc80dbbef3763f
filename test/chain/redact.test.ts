import { describe, expect, it } from "vitest";
import { redactError, redactUrl } from "../../src/chain/redact.js";
import { createChainClient } from "../../src/chain/client.js";
import { freePort } from "../support/free-port.js";

describe("redactUrl: provider keys in RPC URLs never leave the process", () => {
  it.each([
    ["https://rpc.example/v2/SECRETKEY", "https://rpc.example/[redacted]"],
    ["https://rpc.example:8443/?apikey=SECRETKEY", "https://rpc.example:8443/[redacted]"],
    ["https://rpc.example?apikey=SECRETKEY&x=1", "https://rpc.example/[redacted]"],
    ["https://user:SECRETKEY@rpc.example/", "https://[redacted]@rpc.example/"],
    ["wss://rpc.example/ws/v3/SECRETKEY#frag", "wss://rpc.example/[redacted]"],
    ["http://127.0.0.1:8545", "http://127.0.0.1:8545"],
    ["http://127.0.0.1:8545/", "http://127.0.0.1:8545/"],
  ])("%s → %s", (input, output) => {
    expect(redactUrl(input)).toBe(output);
    expect(redactUrl(`URL: ${input}\nRequest body: {}`)).toBe(`URL: ${output}\nRequest body: {}`);
  });

  it("finds URLs inside JSON log lines, escaped newlines and quotes included", () => {
    const line = JSON.stringify({
      err: {
        message: "HTTP request failed.\n\nURL: https://rpc.example/v2/SECRETKEY\nDetails: fetch failed",
        url: "https://rpc.example/v2/SECRETKEY",
      },
    });
    const out = redactUrl(line);
    expect(out).not.toContain("SECRETKEY");
    expect(JSON.parse(out).err.url).toBe("https://rpc.example/[redacted]");
    expect(JSON.parse(out).err.message).toContain("Details: fetch failed");
  });

  it("leaves text without a URL as it is", () => {
    const text = "verify failed: block 12 at 0xabc is not final";
    expect(redactUrl(text)).toBe(text);
  });
});

describe("redactError", () => {
  it("strips the URL from a real viem transport error: message, stack, structured fields and cause", async () => {
    const port = await freePort(); // nobody listens: connection refused
    const rpc = `http://127.0.0.1:${port}/v2/PATHSECRET?apikey=QUERYSECRET`;
    const err = await createChainClient({ RPC_URL: rpc, CHAIN_ID: 31337 })
      .getBlockNumber()
      .then(
        () => null,
        (e: unknown) => e as Error,
      );
    expect(err).not.toBeNull();
    expect(String(err!.message)).toContain("PATHSECRET"); // what viem does: the reason for all this
    const wrapped = new Error("verify failed", { cause: err });
    const clean = redactError(wrapped) as Error & { cause: Error & Record<string, unknown> };
    const everything = JSON.stringify({
      message: clean.message,
      stack: clean.stack,
      cause: { ...clean.cause, message: clean.cause.message, stack: clean.cause.stack },
    });
    expect(everything).not.toMatch(/PATHSECRET|QUERYSECRET/);
    expect(clean.cause.name).toBe(err!.name);
    expect(clean.cause.message).toContain(`http://127.0.0.1:${port}/[redacted]`);
    expect(clean.cause.shortMessage).toBe("HTTP request failed.");
  });

  it("returns an error without a URL unchanged (callers may test its class)", () => {
    class Retryable extends Error {}
    const err = new Retryable("node behind; will retry");
    expect(redactError(err)).toBe(err);
  });
});
