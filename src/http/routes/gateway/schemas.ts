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

/** A meter's name: lowercase letters, digits and _, a letter first, 1 to 41 characters. */
export const METER_NAME = /^[a-z][a-z0-9_]{0,40}$/;

const METER_NAME_MESSAGE =
  "a meter name is a lowercase letter, then up to 40 lowercase letters, digits or _ (e.g. input_tokens)";

export const Quantities = z
  .preprocess(
    (raw, ctx) => {
      // JSON.parse keeps a "__proto__" key as an own property, and zod's record (4.6) skips it
      // without a word: the meter would be ignored. Refused here as the bad name it is.
      if (typeof raw === "object" && raw !== null && Object.hasOwn(raw, "__proto__"))
        ctx.addIssue({ code: "custom", message: METER_NAME_MESSAGE, path: ["__proto__"], input: raw });
      return raw;
    },
    z
      .record(z.string().regex(METER_NAME, METER_NAME_MESSAGE), Quantity)
      .refine(
        (q) => Object.keys(q).length > 0 && Object.keys(q).length <= 10,
        'give 1 to 10 meters, e.g. {"input_tokens": 1200}',
      ),
  )
  .openapi({ example: { input_tokens: 1200, output_tokens: 800 } });

export const OrgIdField = safeText(1, 64).openapi({ example: "org_4fJ2kQ9x0cT1mB7rW3yZ" });
export const ProductField = safeText(1, 40).openapi({ example: "llm" });
export const ModelField = safeText(1, 80).optional().openapi({ example: "zen-pro" });
export const IdempotencyKeyField = safeText(1, 255);

/** A project label: 1 to 64 characters, a letter or digit first, then letters, digits and . _ : / - */
export const PROJECT_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._:/-]{0,63}$/;
export const ProjectField = z
  .string()
  .regex(PROJECT_PATTERN, "a project is 1 to 64 characters: a letter or digit, then letters, digits and . _ : / -")
  .optional()
  .openapi({
    description: "The customer's project this request was for (attribution in the usage report)",
    example: "chatbot-prod",
  });
export const ApiKeyIdField = safeText(1, 64).optional().openapi({
  description:
    "The organization's API key the gateway served this request for (attribution in the usage report); must be a key of org_id (else 422 unknown_api_key)",
  example: "key_2hV8cX1nL5pQ9rT3wY7z",
});
