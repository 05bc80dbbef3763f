import { createHash } from "node:crypto";
import { z } from "@hono/zod-openapi";
import type { Context } from "hono";
import type { CatalogVersionFile } from "../../../billing/catalog.js";
import { BillingError } from "../../../errors.js";
import { costNanoUsd, parseUsd } from "../../../ledger/money.js";
import { usd } from "../../present.js";
import type { AppEnv } from "../../context.js";

export const Upcoming = z.array(z.object({ version: z.string(), effective_at: z.string() }));

export const PricingModelsResponse = z
  .object({
    currency: z.literal("USD"),
    version: z.string(),
    effective_at: z.string(),
    models: z.array(
      z.object({
        id: z.string().openapi({ example: "zen-pro" }),
        product: z.string(),
        rates: z.record(z.string(), z.string()).openapi({
          description: "Exact USD per unit, per meter",
          example: { input_tokens: "0.0000025", output_tokens: "0.00001" },
        }),
        per_million: z.record(z.string(), z.number()).openapi({
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
export type PricingModelsResponse = z.infer<typeof PricingModelsResponse>;

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
export type PricingPlansResponse = z.infer<typeof PricingPlansResponse>;

export function modelsJson(v: { version: string; effectiveAt: Date; document: CatalogVersionFile }) {
  const models = [];
  const products = [];
  for (const [product, p] of Object.entries(v.document.products)) {
    if (p.models) {
      for (const [id, rates] of Object.entries(p.models)) {
        const perMillion = Object.fromEntries(
          Object.entries(rates).map(([m, r]) => [m, usd(costNanoUsd(1_000_000n, r)).number]),
        );
        models.push({ id, product, rates, per_million: perMillion });
      }
    } else {
      products.push({ product, name: p.name, unit: p.unit, rates: p.rates ?? {} });
    }
  }
  return { currency: "USD" as const, version: v.version, effective_at: v.effectiveAt.toISOString(), models, products };
}

export function plansJson(v: { version: string; effectiveAt: Date; document: CatalogVersionFile }) {
  return {
    currency: "USD" as const,
    version: v.version,
    effective_at: v.effectiveAt.toISOString(),
    plans: v.document.plans.map((p) => {
      const monthly = usd(parseUsd(p.monthly_price));
      const included = usd(parseUsd(p.included_credits));
      return {
        id: p.id,
        name: p.name,
        monthly_price: monthly.number,
        monthly_price_usd: monthly.exact,
        included_credits: included.number,
        included_credits_usd: included.exact,
      };
    }),
  };
}

/** Serves JSON with a strong ETag; a matching If-None-Match gets 304 and no body. */
export function cacheable(c: Context<AppEnv>, body: unknown) {
  const text = JSON.stringify(body);
  const etag = `"${createHash("sha256").update(text).digest("base64url").slice(0, 27)}"`;
  c.header("ETag", etag);
  c.header("Cache-Control", "public, max-age=60");
  const match = c.req.header("if-none-match");
  if (match?.split(",").some((t) => t.trim() === etag || t.trim() === "*")) return c.body(null, 304);
  return c.body(text, 200, { "content-type": "application/json" });
}

/** The catalog version in force now and the ones loaded to take effect later; 503 when none is loaded. */
export async function inForce(c: Context<AppEnv>) {
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
