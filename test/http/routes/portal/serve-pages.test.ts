import { describe, expect } from "vitest";
import { createTestApp } from "../../../support/app.js";
import { appTest as it } from "../../../support/fixtures.js";

describe("the portal's pages under /portal", () => {
  it("serves the built app for every page path, with a strict Content-Security-Policy", async ({ app }) => {
    for (const path of ["/portal/", "/portal/costs", "/portal/invoices/inv_123"]) {
      const res = await app.call("GET", path);
      expect(res.status).toBe(200);
      expect(res.headers.get("content-type")).toMatch(/^text\/html/);
      expect(res.text).toContain('<div id="app">');
      expect(res.headers.get("content-security-policy")).toMatch(/script-src 'self';/);
      expect(res.headers.get("cache-control")).toBe("no-store");
    }
    const script = /src="(\/portal\/assets\/[^"]+\.js)"/.exec((await app.call("GET", "/portal/")).text)?.[1];
    const asset = await app.call("GET", script ?? "/portal/assets/none.js");
    expect(asset.status).toBe(200);
    expect(asset.headers.get("content-type")).toMatch(/^text\/javascript/);
    expect(asset.headers.get("cache-control")).toMatch(/immutable/);
    expect((await app.call("GET", "/portal")).status).toBe(308);
  });

  it("answers a missing file 404 and never serves outside its folder", async ({ app }) => {
    expect((await app.call("GET", "/portal/assets/nothing-here.js")).status).toBe(404);
    for (const path of ["/portal/..%2f..%2fpackage.json", "/portal/assets/..%2f..%2f..%2fpackage.json"]) {
      const res = await app.call("GET", path);
      expect(res.text).not.toContain('"name": "hanzo-billing"');
    }
  });

  it("answers a path that is not valid percent-encoding 404 in the envelope, never a 500", async ({ app }) => {
    for (const path of ["/portal/%E0%A4%A", "/portal/%E0", "/portal/assets/%E0", "/portal/assets/%ZZ"]) {
      const res = await app.call("GET", path);
      expect(res.status, path).toBe(404);
      expect(res.json.error.code, path).toBe("not_found");
    }
  });

  it("says the pages are not built (503 in the envelope) when PORTAL_DIR is empty", async ({ db }) => {
    const app = createTestApp({ sql: db.appSql, config: { PORTAL_DIR: "/nonexistent/portal" } });
    const res = await app.call("GET", "/portal/");
    expect(res.status).toBe(503);
    expect(res.json.error.code).toBe("not_configured");
  });
});
