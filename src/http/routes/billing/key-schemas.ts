import { z } from "@hono/zod-openapi";
import { type ApiKeySummary, type CreatedKey, KeyPermissions, KeyScopes } from "../../../billing/api-keys.js";
import { safeText } from "../../schemas.js";

/** A key's name: what it is for ("CI", "staging gateway"), shown in lists; never secret. */
export const KeyName = safeText(1, 100).openapi({ example: "CI" });

export const KeyIdParam = z.object({ id: z.string().max(64).openapi({ example: "key_8f2kq0Vb3xYz" }) });

/** A key as listed: the visible prefix, never the secret. */
export const ApiKeyJson = z
  .object({
    id: z.string(),
    org_id: z
      .string()
      .nullable()
      .openapi({ description: "null for gateway keys: platform credentials of no organization" }),
    scope: z.enum(KeyScopes),
    name: z.string().nullable(),
    permissions: z.array(z.enum(KeyPermissions)),
    prefix: z
      .string()
      .openapi({ description: "The key's first characters, to recognise it; the rest is never shown again" }),
    created_at: z.string(),
    last_used_at: z
      .string()
      .nullable()
      .openapi({ description: "When the key last authenticated a request, to within a minute; null if never" }),
    revoked_at: z.string().nullable(),
  })
  .openapi("ApiKey");
export type ApiKeyJson = z.infer<typeof ApiKeyJson>;

export const ApiKeyList = z.object({ data: z.array(ApiKeyJson) }).openapi("ApiKeyList");
export type ApiKeyList = z.infer<typeof ApiKeyList>;

export const CreatedApiKeyJson = z
  .object({
    id: z.string(),
    org_id: z.string().nullable(),
    scope: z.enum(KeyScopes),
    name: z.string().nullable(),
    permissions: z.array(z.enum(KeyPermissions)),
    key: z.string().openapi({ description: "The full key. Shown only in this response; store it now." }),
    prefix: z.string(),
    created_at: z.string(),
  })
  .openapi("CreatedApiKey");
export type CreatedApiKeyJson = z.infer<typeof CreatedApiKeyJson>;

export const RevokedKeyResponse = z
  .object({ id: z.string(), revoked: z.literal(true), revoked_at: z.string() })
  .openapi("RevokedApiKey");
export type RevokedKeyResponse = z.infer<typeof RevokedKeyResponse>;

export function apiKeyJson(k: ApiKeySummary): ApiKeyJson {
  return {
    id: k.id,
    org_id: k.orgId,
    scope: k.scope,
    name: k.name,
    permissions: k.permissions,
    prefix: k.prefix,
    created_at: k.createdAt.toISOString(),
    last_used_at: k.lastUsedAt?.toISOString() ?? null,
    revoked_at: k.revokedAt?.toISOString() ?? null,
  };
}

export function createdApiKeyJson(k: CreatedKey): CreatedApiKeyJson {
  return {
    id: k.id,
    org_id: k.orgId,
    scope: k.scope,
    name: k.name,
    permissions: k.permissions,
    key: k.key,
    prefix: k.prefix,
    created_at: k.createdAt.toISOString(),
  };
}
