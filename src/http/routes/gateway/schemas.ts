import { z } from "@hono/zod-openapi";
import { safeText } from "../../schemas.js";

/** Above this a quantity is surely a bug upstream, and its cost could overflow the ledger's bigint. */
export const MAX_QUANTITY = 1_000_000_000_000n;

/** A whole, non-negative count: a JSON integer (safe range) or a string of digits. */
export const Quantity = z
  .union([
    z.number().int().nonnegative().max(Number.MAX_SAFE_INTEGER),
    z.string().regex(/^\d{1,19}$/, "must be a whole number"),
  ])
  .transform((v, ctx) => {
    const n = BigInt(v);
    if (n > MAX_QUANTITY) {
      ctx.addIssue({ code: "custom", message: `must be at most ${MAX_QUANTITY}` });
      return z.NEVER;
    }
    return n;
  })
  .openapi({ type: "integer", example: 1200 });

export const Quantities = z
  .record(z.string().regex(/^[a-z][a-z0-9_]{0,40}$/, "meter names are lowercase, e.g. input_tokens"), Quantity)
  .refine(
    (q) => Object.keys(q).length > 0 && Object.keys(q).length <= 10,
    'give 1 to 10 meters, e.g. {"input_tokens": 1200}',
  )
  .openapi({ example: { input_tokens: 1200, output_tokens: 800 } });

export const OrgIdField = safeText(1, 64).openapi({ example: "org_4fJ2kQ9x0cT1mB7rW3yZ" });
export const ProductField = safeText(1, 40).openapi({ example: "llm" });
export const ModelField = safeText(1, 80).optional().openapi({ example: "zen-pro" });
export const IdempotencyKeyField = safeText(1, 255);
