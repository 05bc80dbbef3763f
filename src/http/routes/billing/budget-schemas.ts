import { z } from "@hono/zod-openapi";
import {
  type Budget,
  BudgetEnforcements,
  BudgetScopes,
  budgetTarget,
  MAX_BUDGET_LIMIT_NANO_USD,
  MAX_BUDGETS_PER_ORG,
} from "../../../billing/budgets.js";
import { PROJECT_PATTERN } from "../gateway/schemas.js";
import { usdFields } from "../../present.js";
import { safeText, UsdString } from "../../schemas.js";

export const BudgetIdParam = z.object({ id: z.string().max(64).openapi({ example: "bud_3kQ9xW2mP7rT5vY1zA4c" }) });

export const SetBudgetRequest = z
  .strictObject({
    scope: z.enum(BudgetScopes).openapi({
      description:
        "`org`: all the organization's usage; `project`: usage attributed to `project`; `key`: usage attributed to `api_key_id`",
    }),
    project: z
      .string()
      .regex(PROJECT_PATTERN, "a project is 1 to 64 characters: a letter or digit, then letters, digits and . _ : / -")
      .optional()
      .openapi({ description: "Required for scope project (and only then)", example: "chatbot-prod" }),
    api_key_id: safeText(1, 64)
      .optional()
      .openapi({ description: "Required for scope key (and only then): one of the organization's org keys" }),
    limit: UsdString.refine((n) => n > 0n, "must be greater than zero")
      .refine((n) => n <= MAX_BUDGET_LIMIT_NANO_USD, "must be at most 10000000 USD a month")
      .openapi({ description: "The monthly limit in USD, a decimal string (at most 10000000)", example: "50.00" }),
    enforcement: z.enum(BudgetEnforcements).openapi({
      description:
        "`hard`: authorizations that would take the period's spend and holds above the limit are refused (402 spend_limit_reached); `soft`: only told (budget.threshold_reached)",
    }),
  })
  .superRefine((b, ctx) => {
    if (b.scope === "project" ? b.project === undefined : b.project !== undefined)
      ctx.addIssue({
        code: "custom",
        path: ["project"],
        message: b.scope === "project" ? "a project budget needs project" : "project is for scope project only",
      });
    if (b.scope === "key" ? b.api_key_id === undefined : b.api_key_id !== undefined)
      ctx.addIssue({
        code: "custom",
        path: ["api_key_id"],
        message: b.scope === "key" ? "a key budget needs api_key_id" : "api_key_id is for scope key only",
      });
  })
  .openapi("SetBudgetRequest", {
    example: { scope: "key", api_key_id: "key_2hV8cX1nL5pQ9rT3wY7z", limit: "50.00", enforcement: "hard" },
  });
export type SetBudgetRequest = z.input<typeof SetBudgetRequest>;

export const BudgetJson = z
  .object({
    id: z.string(),
    scope: z.enum(BudgetScopes),
    target: z.string().openapi({ description: "The organization id, the project, or the API key id" }),
    project: z.string().nullable(),
    api_key_id: z.string().nullable(),
    enforcement: z.enum(BudgetEnforcements),
    limit: z.number(),
    limit_usd: z.string(),
    limit_nano_usd: z.string(),
    period: z
      .object({ start: z.string(), end: z.string() })
      .openapi({ description: "This period: the calendar month in UTC, by the time usage is recorded" }),
    spent: z.number(),
    spent_usd: z.string(),
    spent_nano_usd: z.string(),
    held: z.number(),
    held_usd: z.string(),
    held_nano_usd: z.string(),
    remaining: z.number(),
    remaining_usd: z.string(),
    remaining_nano_usd: z.string(),
    created_at: z.string(),
    updated_at: z.string(),
  })
  .openapi("Budget", {
    description:
      "A monthly budget with this period's metered spend, what live holds in its scope hold, and what remains of the limit (never below zero)",
  });
export type BudgetJson = z.infer<typeof BudgetJson>;

export const BudgetList = z
  .object({ data: z.array(BudgetJson) })
  .openapi("BudgetList", { description: `At most ${MAX_BUDGETS_PER_ORG} budgets per organization` });

export const DeletedBudgetResponse = z
  .object({ id: z.string(), deleted: z.literal(true), deleted_at: z.string() })
  .openapi("DeletedBudget");

export function budgetJson(b: Budget): BudgetJson {
  const remaining = b.limit - b.spent - b.held;
  return {
    id: b.id,
    scope: b.scope,
    target: budgetTarget(b),
    project: b.project,
    api_key_id: b.apiKeyId,
    enforcement: b.enforcement,
    ...usdFields("limit", b.limit),
    period: { start: b.period.start.toISOString(), end: b.period.end.toISOString() },
    ...usdFields("spent", b.spent),
    ...usdFields("held", b.held),
    ...usdFields("remaining", remaining > 0n ? remaining : 0n),
    created_at: b.createdAt.toISOString(),
    updated_at: b.updatedAt.toISOString(),
  };
}
