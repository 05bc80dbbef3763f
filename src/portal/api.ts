/**
 * The portal's one way to call the API: same origin, the session cookie (HttpOnly, sent by the
 * browser), the session's CSRF token on every write, and errors turned into sentences a customer
 * can act on. Every call goes through the same /v1/billing handlers an org key uses.
 */
import type { components } from "../../client/openapi.d.ts";

export type Schemas = components["schemas"];

export type Session = { id: string; org_id: string; key_id: string; permissions: string[]; csrf_token: string };

let csrfToken = "";
let onSessionEnded: () => void = () => {};

export class ApiError extends Error {
  constructor(
    message: string,
    readonly status: number,
    readonly code: string,
  ) {
    super(message);
  }
}

/** Reads the session (and its CSRF token) once at start; null when there is none. */
export async function loadSession(ended: () => void): Promise<Session | null> {
  onSessionEnded = ended;
  const res = await fetch("/portal/session", { credentials: "same-origin" }).catch(() => null);
  if (!res) throw new ApiError(OFFLINE, 0, "network");
  if (res.status === 401 || res.status === 403) return null;
  if (!res.ok) throw new ApiError("The billing portal could not start. Reload the page to try again.", res.status, "");
  const session = (await res.json()) as Session;
  csrfToken = session.csrf_token;
  return session;
}

const OFFLINE = "Hanzo Billing can't be reached right now. Check your connection and try again.";

/** Plain words for what the API's error codes mean to someone in the portal. */
function explain(status: number, code: string, message: string): string {
  if (status === 401) return "Your billing session has ended. Open a new billing link from your console to continue.";
  if (code === "csrf_token_invalid") return "This page is out of date. Reload it and try again.";
  if (code === "insufficient_scope") return `You don't have permission to do this: ${message}.`;
  if (status === 429) return "Too many requests at once. Wait a few seconds and try again.";
  if (code === "not_configured") return `This isn't available on this account yet (${message}).`;
  if (status >= 500) return "Something went wrong on our side. Try again in a moment.";
  const sentence = message.charAt(0).toUpperCase() + message.slice(1);
  return /[.!?]$/.test(sentence) ? sentence : `${sentence}.`;
}

export async function api<T>(
  method: "GET" | "POST" | "PUT" | "PATCH" | "DELETE",
  path: string,
  body?: unknown,
  opts: { idempotencyKey?: string } = {},
): Promise<T> {
  const headers: Record<string, string> = { accept: "application/json" };
  if (method !== "GET") headers["x-csrf-token"] = csrfToken;
  if (body !== undefined) headers["content-type"] = "application/json";
  if (opts.idempotencyKey) headers["idempotency-key"] = opts.idempotencyKey;
  const res = await fetch(path, {
    method,
    headers,
    credentials: "same-origin",
    body: body === undefined ? undefined : JSON.stringify(body),
  }).catch(() => null);
  if (!res) throw new ApiError(OFFLINE, 0, "network");
  const text = await res.text();
  const json = text ? safeParse(text) : undefined;
  if (!res.ok) {
    const error = (json as { error?: { code?: string; message?: string } } | undefined)?.error;
    if (res.status === 401) onSessionEnded();
    throw new ApiError(
      explain(res.status, error?.code ?? "", error?.message ?? res.statusText),
      res.status,
      error?.code ?? "",
    );
  }
  return json as T;
}

function safeParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}

/** A fresh idempotency key for one intent (one form submission), kept across its retries. */
export const newIdempotencyKey = () => `portal-${crypto.randomUUID()}`;
