const esc = (s: string) =>
  s.replace(/[&<>"']/g, (ch) => ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[ch] ?? ch);

/** A small standalone page, before the portal has a session: `body` is HTML already escaped. */
function standalonePage(title: string, body: string): string {
  return `<!doctype html><html lang="en"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1"><link rel="icon" href="data:,"><title>${esc(title)} · Hanzo Billing</title><style>body{font:16px/1.5 system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;color:#1b1f24}h1{font-size:1.4rem}button{font:inherit;padding:.5rem 1rem;border-radius:6px;border:1px solid #1b1f24;background:#1b1f24;color:#fff;cursor:pointer}</style></head><body><main><h1>${esc(title)}</h1>${body}</main></body></html>`;
}

/** What the portal says before it has a session (a refused link). */
export function portalMessagePage(title: string, message: string): string {
  return standalonePage(title, `<p>${esc(message)}</p>`);
}

/** A portal link's page: whose billing it opens, and the button that opens it (POST /portal/open). */
export function portalOpenPage(orgName: string, token: string): string {
  return standalonePage(
    "Open your billing portal",
    `<p>This link signs this browser in to the billing of <strong>${esc(orgName)}</strong> for 12 hours.</p>` +
      `<form method="post" action="/portal/open"><input type="hidden" name="token" value="${esc(token)}">` +
      `<button type="submit">Continue to billing</button></form>`,
  );
}
