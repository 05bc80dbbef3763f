import { describe, expect } from "vitest";
import { readCatalogFile } from "../../src/billing/catalog.js";
import { loadCatalog } from "../../src/billing/load-catalog.js";
import { appTest as it } from "../support/fixtures.js";
import { testContext } from "../support/context.js";

describe("public pricing catalog", () => {
  let now = new Date("2026-11-15T00:00:00Z");
  it.scoped({ appOptions: { clock: () => now } });

  it("serves per-unit model prices without auth, exactly and per million for display", async ({ app }) => {
    const res = await app.call("GET", "/v1/pricing/models");
    expect(res.status).toBe(200);
    expect(res.json).toMatchObject({ currency: "USD", version: "2026-01-01", upcoming: [] });
    expect(res.json.models).toContainEqual({
      id: "zen-pro",
      product: "llm",
      rates: { input_tokens: "0.0000025", output_tokens: "0.00001" },
      per_million: { input_tokens: 2.5, output_tokens: 10 },
    });
    expect(res.json.products.map((p: { product: string }) => p.product).sort()).toEqual([
      "api",
      "functions",
      "storage",
    ]);
    const plans = await app.call("GET", "/v1/pricing/plans");
    expect(plans.json.plans).toContainEqual({
      id: "pro",
      name: "Pro",
      monthly_price: 20,
      monthly_price_usd: "20",
      included_credits: 20,
      included_credits_usd: "20",
    });
  });

  it("is cacheable: a strong ETag, 304 for a matching If-None-Match, a new ETag when prices change", async ({
    app,
    db,
  }) => {
    const first = await app.call("GET", "/v1/pricing/models");
    const etag = first.headers.get("etag")!;
    expect(etag).toMatch(/^"[A-Za-z0-9_-]+"$/);
    expect(first.headers.get("cache-control")).toContain("max-age");
    const again = await app.call("GET", "/v1/pricing/models", { headers: { "if-none-match": etag } });
    expect(again.status).toBe(304);
    expect(again.text).toBe("");
    expect((await app.call("GET", "/v1/pricing/models", { headers: { "if-none-match": '"other"' } })).status).toBe(200);

    // A new version announced for later shows up as upcoming, then takes over at its effective time.
    const file = await readCatalogFile();
    const v2 = structuredClone(file.versions[0]!);
    v2.version = "2026-12-01";
    v2.effective_at = "2026-12-01T00:00:00Z";
    v2.products.llm!.models!["zen-pro"] = { input_tokens: "0.000002", output_tokens: "0.000008" };
    await loadCatalog(testContext(db.sql), { file: { versions: [file.versions[0]!, v2] } });
    const announced = await app.call("GET", "/v1/pricing/models");
    expect(announced.json.upcoming).toEqual([{ version: "2026-12-01", effective_at: "2026-12-01T00:00:00.000Z" }]);
    expect(announced.headers.get("etag")).not.toBe(etag);
    now = new Date("2026-12-01T00:00:00Z");
    const current = await app.call("GET", "/v1/pricing/models");
    expect(current.json.version).toBe("2026-12-01");
    expect(current.json.models.find((m: { id: string }) => m.id === "zen-pro").per_million).toEqual({
      input_tokens: 2,
      output_tokens: 8,
    });
  });
});
