/**
 * Whether a request comes from one of this server's own pages, as a browser tells it: by
 * Sec-Fetch-Site (sent to https and localhost), else by Origin against Host (sent with a POST).
 * A request that says neither is not a browser's (curl, a script): it carries its credentials
 * itself, so no other site can have made it. For cookie- or Basic-authenticated writes, which a
 * browser would otherwise send with requests another site starts. A proxy in front must pass Host
 * through.
 */
export function fromOwnPage(headers: Headers): boolean {
  const site = headers.get("sec-fetch-site");
  if (site !== null) return site === "same-origin";
  const origin = headers.get("origin");
  if (origin === null) return true;
  try {
    return new URL(origin).host === headers.get("host");
  } catch {
    return false; // "null" (a sandboxed or file page) or garbage
  }
}
