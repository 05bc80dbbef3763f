import { describe, expect } from "vitest";
import { PORTAL_LINK_TTL_MS, PORTAL_SESSION_TTL_MS } from "../../../../src/billing/portal-sessions.js";
import { manualClock, TEST_ADMIN_KEY, type TestApp } from "../../../support/app.js";
import { appTest as it } from "../../../support/fixtures.js";

const clock = manualClock();

/** Makes a link with `key` and opens it as a browser would: the session cookie and the CSRF token. */
async function openSession(app: TestApp, key: string) {
  const link = await app.call("POST", "/v1/billing/portal-sessions", { key });
  expect(link.status).toBe(201);
  const page = await open(app, link.json.url);
  expect(page.status).toBe(200);
  expect(await page.text()).toContain('<form method="post" action="/portal/open">');
  const opened = await press(app, new URL(link.json.url).searchParams.get("token") ?? "");
  expect(opened.status).toBe(303);
  expect(opened.headers.get("location")).toBe("/portal/");
  const setCookie = opened.headers.get("set-cookie") ?? "";
  const cookie = /hanzo_portal=([^;]+)/.exec(setCookie)?.[1];
  if (!cookie) throw new Error(`no session cookie in ${setCookie}`);
  const headers = { cookie: `hanzo_portal=${cookie}` };
  const session = await app.call("GET", "/portal/session", { headers });
  expect(session.status).toBe(200);
  return { link, setCookie, headers, id: session.json.id as string, csrf: session.json.csrf_token as string };
}

const open = (app: TestApp, url: string) => {
  const u = new URL(url);
  return app.app.request(u.pathname + u.search);
};

/** The link page's button: its form posted from the page itself. */
const press = (app: TestApp, token: string, headers: Record<string, string> = { "sec-fetch-site": "same-origin" }) =>
  app.app.request("/portal/open", {
    method: "POST",
    headers: { "content-type": "application/x-www-form-urlencoded", ...headers },
    body: new URLSearchParams({ token }).toString(),
  });

describe("billing portal sessions", () => {
  it.scoped({ appOptions: { clock } });

  it("a link opens once into a 12-hour HttpOnly, SameSite=Strict session acting as its org", async ({ app }) => {
    const org = await app.createOrg();
    await app.grant(org.id, "12.50");
    const s = await openSession(app, org.orgKey);
    expect(s.link.json.url).toMatch(/^http:\/\/localhost\/portal\/open\?token=[A-Za-z0-9_-]{43}$/);
    expect(new Date(s.link.json.expires_at).getTime() - clock().getTime()).toBe(PORTAL_LINK_TTL_MS);
    expect(s.setCookie).toMatch(/HttpOnly/i);
    expect(s.setCookie).toMatch(/SameSite=Strict/i);
    expect(s.setCookie).toMatch(new RegExp(`Max-Age=${PORTAL_SESSION_TTL_MS / 1000}`));
    expect(s.setCookie).not.toMatch(/Secure/i); // plain http on localhost only
    const balance = await app.call("GET", "/v1/billing/balance", { headers: s.headers });
    expect(balance.status).toBe(200);
    expect(balance.json).toEqual((await app.call("GET", "/v1/billing/balance", { key: org.orgKey })).json);
    // Reused: refused, whatever the first open did.
    const again = await open(app, s.link.json.url);
    expect(again.status).toBe(410);
    expect(again.headers.get("set-cookie")).toBeNull();
    expect(await again.text()).toMatch(/expired or was already used/);
  });

  it("the cookie is Secure outside localhost", async ({ app }) => {
    const org = await app.createOrg();
    const link = await app.call("POST", "/v1/billing/portal-sessions", { key: org.orgKey });
    const token = new URL(link.json.url).searchParams.get("token");
    const opened = await app.app.request("https://billing.example.com/portal/open", {
      method: "POST",
      headers: { "content-type": "application/x-www-form-urlencoded", "sec-fetch-site": "same-origin" },
      body: new URLSearchParams({ token: token ?? "" }).toString(),
    });
    expect(opened.status).toBe(303);
    expect(opened.headers.get("set-cookie")).toMatch(/; Secure/i);
  });

  it("a link past 15 minutes, or revoked, does not open; a session ends after 12 hours", async ({ app }) => {
    const org = await app.createOrg();
    const late = await app.call("POST", "/v1/billing/portal-sessions", { key: org.orgKey });
    clock.advance(PORTAL_LINK_TTL_MS);
    expect((await open(app, late.json.url)).status).toBe(410);

    const revoked = await app.call("POST", "/v1/billing/portal-sessions", { key: org.orgKey });
    expect(
      (await app.call("DELETE", `/v1/billing/portal-sessions/${revoked.json.id}`, { key: org.orgKey })).status,
    ).toBe(200);
    expect((await open(app, revoked.json.url)).status).toBe(410);

    const s = await openSession(app, org.orgKey);
    clock.advance(PORTAL_SESSION_TTL_MS - 1);
    expect((await app.call("GET", "/v1/billing/balance", { headers: s.headers })).status).toBe(200);
    clock.advance(1);
    const ended = await app.call("GET", "/v1/billing/balance", { headers: s.headers });
    expect(ended.status).toBe(401);
    expect(ended.json.error.code).toBe("invalid_api_key");
  });

  it("two racing opens of one link start exactly one session", async ({ app }) => {
    const org = await app.createOrg();
    for (let round = 0; round < 5; round++) {
      const link = await app.call("POST", "/v1/billing/portal-sessions", { key: org.orgKey });
      const token = new URL(link.json.url).searchParams.get("token") ?? "";
      const answers = await Promise.all(Array.from({ length: 4 }, () => press(app, token)));
      expect(answers.map((a) => a.status).sort()).toEqual([303, 410, 410, 410]);
    }
  });

  it("the link's page uses nothing up (a mail scanner's fetch); only its own button opens it, never a form on another site", async ({
    app,
  }) => {
    const org = await app.createOrg("Scanned Co <&>");
    const link = await app.call("POST", "/v1/billing/portal-sessions", { key: org.orgKey });
    const token = new URL(link.json.url).searchParams.get("token") ?? "";
    for (let i = 0; i < 3; i++) {
      const page = await open(app, link.json.url);
      expect(page.status).toBe(200);
      expect(page.headers.get("set-cookie")).toBeNull();
      expect(page.headers.get("x-frame-options")).toBe("DENY");
      expect(page.headers.get("cache-control")).toBe("no-store");
      expect(await page.text()).toContain("<strong>Scanned Co &lt;&amp;&gt;</strong>");
    }
    // Another site's form posting the sender's own link: no session (login CSRF).
    const elsewhere: Record<string, string>[] = [
      { "sec-fetch-site": "cross-site" },
      { "sec-fetch-site": "same-site" },
      { origin: "https://evil.example", host: "localhost" },
    ];
    for (const headers of elsewhere) {
      const forged = await press(app, token, headers);
      expect(forged.status, JSON.stringify(headers)).toBe(403);
      expect(forged.headers.get("set-cookie")).toBeNull();
    }
    // The person's own press still works, once.
    const opened = await press(app, token, { origin: "http://localhost", host: "localhost" });
    expect(opened.status).toBe(303);
    expect(opened.headers.get("set-cookie")).toMatch(/^hanzo_portal=/);
    expect((await open(app, link.json.url)).status).toBe(410);
    expect((await press(app, token)).status).toBe(410);
    // No token, or not a form: the refused-link page, not a 500.
    expect((await press(app, "")).status).toBe(410);
    const notForm = await app.app.request("/portal/open", {
      method: "POST",
      headers: { "content-type": "application/json", "sec-fetch-site": "same-origin" },
      body: "{",
    });
    expect(notForm.status).toBe(410);
  });

  it("writes need the session's CSRF token (403 in the envelope without it); reads do not", async ({ app }) => {
    const org = await app.createOrg();
    const s = await openSession(app, org.orgKey);
    const body = { name: "from the portal" };
    const without = await app.call("POST", "/v1/billing/keys", { headers: s.headers, body });
    expect(without.status).toBe(403);
    expect(without.json.error).toMatchObject({ code: "csrf_token_invalid", type: "permission_error" });
    const wrong = await app.call("POST", "/v1/billing/keys", {
      // One character changed (never to itself: a token ending in "A" must not stay right).
      headers: { ...s.headers, "x-csrf-token": `${s.csrf.slice(0, -1)}${s.csrf.endsWith("A") ? "B" : "A"}` },
      body,
    });
    expect(wrong.status).toBe(403);
    const withToken = await app.call("POST", "/v1/billing/keys", {
      headers: { ...s.headers, "x-csrf-token": s.csrf },
      body,
    });
    expect(withToken.status).toBe(201);
    const keys = await app.call("GET", "/v1/billing/keys", { headers: s.headers });
    expect(keys.json.data.filter((k: { name: string }) => k.name === "from the portal")).toHaveLength(1);
  });

  it("a session sees only its own organization, and cannot make links or act as admin", async ({ app }) => {
    const a = await app.createOrg("A");
    const b = await app.createOrg("B");
    const bSession = await openSession(app, b.orgKey);
    const aKeys = await app.call("GET", "/v1/billing/keys", { key: a.orgKey });
    const revokeA = await app.call("DELETE", `/v1/billing/keys/${aKeys.json.data[0].id}`, {
      headers: { ...bSession.headers, "x-csrf-token": bSession.csrf },
    });
    expect(revokeA.status).toBe(404);
    const bKeys = await app.call("GET", "/v1/billing/keys", { headers: bSession.headers });
    expect(bKeys.json.data.every((k: { org_id: string }) => k.org_id === b.id)).toBe(true);
    const link = await app.call("POST", "/v1/billing/portal-sessions", {
      headers: { ...bSession.headers, "x-csrf-token": bSession.csrf },
    });
    expect(link.status).toBe(403);
    const admin = await app.call("GET", `/v1/admin/orgs/${a.id}`, { headers: bSession.headers });
    expect(admin.status).toBe(403);
    // A's key cannot end B's session.
    expect((await app.call("DELETE", `/v1/billing/portal-sessions/${bSession.id}`, { key: a.orgKey })).status).toBe(
      404,
    );
  });

  it("a session has its key's permissions and ends with its key or on sign-out", async ({ app }) => {
    const org = await app.createOrg();
    const readOnly = await app.call("POST", `/v1/admin/orgs/${org.id}/keys`, {
      key: TEST_ADMIN_KEY,
      body: { scope: "org", permissions: [] },
    });
    const s = await openSession(app, readOnly.json.key);
    const create = await app.call("POST", "/v1/billing/keys", {
      headers: { ...s.headers, "x-csrf-token": s.csrf },
      body: { name: "nope" },
    });
    expect(create.status).toBe(403);
    expect(create.json.error.code).toBe("insufficient_scope");
    await app.call("DELETE", `/v1/admin/keys/${readOnly.json.id}`, { key: TEST_ADMIN_KEY });
    expect((await app.call("GET", "/v1/billing/balance", { headers: s.headers })).status).toBe(401);

    const t = await openSession(app, org.orgKey);
    const out = await app.call("DELETE", `/v1/billing/portal-sessions/${t.id}`, {
      headers: { ...t.headers, "x-csrf-token": t.csrf },
    });
    expect(out.status).toBe(200);
    expect((await app.call("GET", "/portal/session", { headers: t.headers })).status).toBe(401);
  });

  it("an API key has no portal session; a bad cookie is a 401 in the envelope", async ({ app }) => {
    const org = await app.createOrg();
    const viaKey = await app.call("GET", "/portal/session", { key: org.orgKey });
    expect(viaKey.status).toBe(403);
    const bad = await app.call("GET", "/v1/billing/balance", { headers: { cookie: "hanzo_portal=nonsense" } });
    expect(bad.status).toBe(401);
    expect(bad.json.error.code).toBe("invalid_api_key");
    expect((await open(app, "http://localhost/portal/open?token=%00")).status).toBe(410);
    expect((await open(app, "http://localhost/portal/open")).status).toBe(410);
  });
});
