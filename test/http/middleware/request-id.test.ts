import { describe, expect } from "vitest";
import { appTest as it } from "../../support/fixtures.js";

describe("request ids", () => {
  it("keeps a sane caller request id and replaces a hostile one", async ({ app }) => {
    const kept = await app.call("GET", "/healthz", { headers: { "x-request-id": "gw-12345678" } });
    expect(kept.headers.get("x-request-id")).toBe("gw-12345678");
    const replaced = await app.call("GET", "/healthz", { headers: { "x-request-id": "<script>" } });
    expect(replaced.headers.get("x-request-id")).toMatch(/^req_/);
  });
});
