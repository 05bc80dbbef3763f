import { createHash } from "node:crypto";
import { createRoute, z, type OpenAPIHono } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { CatalogVersionFile } from "../../../billing/catalog.js";
import { BillingError } from "../../../errors.js";
import { costNanoUsd, formatUsdNumber, parseUsd, formatUsd } from "../../../ledger/money.js";
import type { AppEnv } from "../../context.js";
import { errorResponses, jsonResponse } from "../../schemas.js";

const Upcoming = z.array(z.object({ version: z.string(), effective_at: z.string() }));

export const PricingModelsResponse = z
  .object({
    currency: z.literal("USD"),
    version: z.string(),
    effective_at: z.string(),
    models: z.array(
      z.object({
        id: z.string().openapi({ example: "zen-pro" }),
        product: z.string(),
        rates: z
          .record(z.string(), z.string())
          .openapi({
            description: "Exact USD per unit, per meter",
            example: { input_tokens: "0.0000025", output_tokens: "0.00001" },
          }),
        per_million: z
          .record(z.string(), z.number())
          .openapi({
            description: "USD per million units, for display",
            example: { input_tokens: 2.5, output_tokens: 10 },
          }),
      }),
    ),
    products: z.array(
      z.object({ product: z.string(), name: z.string(), unit: z.string(), rates: z.record(z.string(), z.string()) }),
    ),
    upcoming: Upcoming,
  })
  .openapi("PricingModels");

export const PricingPlansResponse = z
  .object({
    currency: z.literal("USD"),
    version: z.string(),
    effective_at: z.string(),
    plans: z.array(
      z.object({
        id: z.string(),
        name: z.string(),
        monthly_price: z.number(),
        monthly_price_usd: z.string(),
        included_credits: z.number(),
        included_credits_usd: z.string(),
      }),
    ),
    upcoming: Upcoming,
  })
  .openapi("PricingPlans");

function modelsJson(v: { version: string; effectiveAt: Date; document: CatalogVersionFile }) {
  const models = [];
  const products = [];
  for (const [product, p] of Object.entries(v.document.products)) {
    if (p.models) {
      for (const [id, rates] of Object.entries(p.models)) {
        const perMillion = Object.fromEntries(
          Object.entries(rates).map(([m, r]) => [m, formatUsdNumber(costNanoUsd(1_000_000n, r))]),
        );
        models.push({ id, product, rates, per_million: perMillion });
      }
    } else {
      products.push({ product, name: p.name, unit: p.unit, rates: p.rates ?? {} });
    }
  }
  return { currency: "USD" as const, version: v.version, effective_at: v.effectiveAt.toISOString(), models, products };
}

function plansJson(v: { version: string; effectiveAt: Date; document: CatalogVersionFile }) {
  return {
    currency: "USD" as const,
    version: v.version,
    effective_at: v.effectiveAt.toISOString(),
    plans: v.document.plans.map((p) => ({
      id: p.id,
      name: p.name,
      monthly_price: formatUsdNumber(parseUsd(p.monthly_price)),
      monthly_price_usd: formatUsd(parseUsd(p.monthly_price)),
      included_credits: formatUsdNumber(parseUsd(p.included_credits)),
      included_credits_usd: formatUsd(parseUsd(p.included_credits)),
    })),
  };
}

/** Serves JSON with a strong ETag; a matching If-None-Match gets 304 and no body. */
function cacheable(c: Context<AppEnv>, body: unknown) {
  const text = JSON.stringify(body);
  const etag = `"${createHash("sha256").update(text).digest("base64url").slice(0, 27)}"`;
  c.header("ETag", etag);
  c.header("Cache-Control", "public, max-age=60");
  const match = c.req.header("if-none-match");
  if (match && match.split(",").some((t) => t.trim() === etag || t.trim() === "*")) return c.body(null, 304);
  return c.body(text, 200, { "content-type": "application/json" });
}

const modelsRoute = createRoute({
  method: "get",
  path: "/v1/pricing/models",
  tags: ["pricing"],
  summary: "Public per-unit prices in force now (no auth)",
  responses: {
    200: jsonResponse(PricingModelsResponse, "Prices; cacheable with ETag"),
    304: { description: "Not modified" },
    ...errorResponses(503),
  },
});
const plansRoute = createRoute({
  method: "get",
  path: "/v1/pricing/plans",
  tags: ["pricing"],
  summary: "Public subscription plans in force now (no auth)",
  responses: {
    200: jsonResponse(PricingPlansResponse, "Plans; cacheable with ETag"),
    304: { description: "Not modified" },
    ...errorResponses(503),
  },
});

export function registerPricing(app: OpenAPIHono<AppEnv>) {
  async function inForce(c: Context<AppEnv>) {
    const { metering, clock } = c.get("deps");
    await metering.catalog.refresh();
    if (metering.catalog.isEmpty)
      throw new BillingError("not_configured", "no pricing catalog is loaded; run npm run catalog:load");
    const now = clock();
    const current = metering.catalog.versionAt(now);
    const upcoming = metering.catalog
      .allVersions()
      .filter((v) => v.effectiveAt > now)
      .map((v) => ({ version: v.version, effective_at: v.effectiveAt.toISOString() }));
    return { current, upcoming };
  }
  app.openapi(modelsRoute, (async (c: Context<AppEnv>) => {
    const { current, upcoming } = await inForce(c);
    return cacheable(c, { ...modelsJson(current), upcoming });
  }) as never);
  app.openapi(plansRoute, (async (c: Context<AppEnv>) => {
    const { current, upcoming } = await inForce(c);
    return cacheable(c, { ...plansJson(current), upcoming });
  }) as never);
}
