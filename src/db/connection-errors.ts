/**
 * Errors of the link to PostgreSQL, not of a query: the server could not be reached, the link was
 * lost mid-request, or the server is shutting down, starting up or full. A query that failed this
 * way may or may not have been applied if its link was lost after it was sent.
 */
const CONNECTION_ERRORS = new Set([
  "CONNECTION_CLOSED",
  "CONNECTION_ENDED",
  "CONNECTION_DESTROYED",
  "CONNECT_TIMEOUT",
  "ECONNREFUSED",
  "ECONNRESET",
  "ETIMEDOUT",
  "EHOSTUNREACH",
  "ENETUNREACH",
  "ENOTFOUND",
  "EAI_AGAIN",
  "EPIPE",
]);

export function isConnectionError(err: unknown): boolean {
  const code = (err as { code?: unknown } | null)?.code;
  if (typeof code !== "string") return false;
  // SQLSTATE 08 connection exception, 57P01-03 shutting down / starting up, 53300 too many connections.
  return CONNECTION_ERRORS.has(code) || code.startsWith("08") || code.startsWith("57P") || code === "53300";
}
