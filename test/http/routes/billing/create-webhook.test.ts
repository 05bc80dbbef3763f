import { describe, expect } from "vitest";
import { appTest as it } from "../../../support/fixtures.js";

// The production rules (WEBHOOK_ALLOW_LOCALHOST off): https to public addresses only.
describe("POST /v1/billing/webhooks (createWebhook)", () => {
  it("creates an endpoint and shows its secret this once", async ({ app }) => {
    const org = await app.createOrg();
    const res = await app.call("POST", "/v1/billing/webhooks", {
      key: org.orgKey,
      body: { url: "https://hooks.example.com/hanzo", events: ["balance.low", "deposit.credited", "balance.low"] },
    });
    expect(res.status).toBe(201);
    expect(res.json).toMatchObject({
      id: expect.stringMatching(/^wh_/),
      url: "https://hooks.example.com/hanzo",
      events: ["balance.low", "deposit.credited"],
      enabled: true,
      disabled_reason: null,
      secret: expect.stringMatching(/^whsec_[A-Za-z0-9+/]{32}$/),
    });
    const list = await app.call("GET", "/v1/billing/webhooks", { key: org.orgKey });
    expect(list.json.data.map((e: { id: string }) => e.id)).toEqual([res.json.id]);
    expect(list.text).not.toContain("whsec_");
  });

  it.for([
    [{ url: "http://hooks.example.com/x" }, "url", /must be https/],
    [{ url: "ftp://hooks.example.com/x" }, "url", /must be https/],
    [{ url: "hooks.example.com/x" }, "url", /absolute URL/],
    [{ url: "" }, "url", /absolute URL/],
    [{ url: "https://user:pw@hooks.example.com/x" }, "url", /user name or password/],
    [{ url: "https://hooks.example.com/x#frag" }, "url", /fragment/],
    [{ url: "https://localhost/x" }, "url", /this machine/],
    [{ url: "https://api.localhost/x" }, "url", /this machine/],
    [{ url: "http://127.0.0.1:3000/x" }, "url", /must be https/],
    [{ url: "https://127.0.0.1/x" }, "url", /private/],
    [{ url: "https://127.1.2.3/x" }, "url", /private/],
    [{ url: "https://[::1]/x" }, "url", /private/],
    [{ url: "https://[::ffff:127.0.0.1]/x" }, "url", /private/],
    [{ url: "https://10.0.0.8/x" }, "url", /private/],
    [{ url: "https://172.16.5.4/x" }, "url", /private/],
    [{ url: "https://192.168.1.1/x" }, "url", /private/],
    [{ url: "https://169.254.169.254/latest/meta-data" }, "url", /private/],
    [{ url: "https://[fd00:ec2::254]/x" }, "url", /private/],
    [{ url: "https://[fe80::1]/x" }, "url", /private/],
    [{ url: "https://0.0.0.0/x" }, "url", /private/],
    [{ url: "https://2130706433/x" }, "url", /private/], // 127.0.0.1 as one number
    [{ url: "https://0x7f.1/x" }, "url", /private/], // 127.0.0.1 in hex, two parts
    [{ url: "https://0177.0.0.1/x" }, "url", /private/], // 127.0.0.1 in octal
    [{ url: "https://169.254.169.254./x" }, "url", /private/], // trailing dot
    [{ url: "https://localhost./x" }, "url", /this machine/],
    [{ url: "https://api.localhost./x" }, "url", /this machine/],
    [{ url: "https://[::127.0.0.1]/x" }, "url", /private/], // IPv4-compatible (::7f00:1)
    [{ url: "https://[::ffff:0:127.0.0.1]/x" }, "url", /private/], // IPv4-translated (SIIT)
    [{ url: "https://[2002:7f00:1::]/x" }, "url", /private/], // 6to4 around 127.0.0.1
    [{ url: "https://[64:ff9b::a9fe:a9fe]/x" }, "url", /private/], // NAT64 around 169.254.169.254
    [{ url: "https://[::ffff:a9fe:a9fe]/x" }, "url", /private/],
    [{ url: "https://[fe80::1%25eth0]/x" }, "url", /absolute URL/], // a zone id is no URL host
    [{ url: "https://127.0.0.1:443@hooks.example.com/x" }, "url", /user name or password/],
    [{ url: `https://example.com/${"a".repeat(2100)}` }, "url", /at most|too_big|2048/],
    [{ url: 42 }, "url", /string/],
    [{}, "url", /./],
    [{ url: "https://hooks.example.com", events: ["balance.nope"] }, "events.0", /./],
    [{ url: "https://hooks.example.com", events: "balance.low" }, "events", /./],
    [{ url: "https://hooks.example.com", enabled: "yes" }, "enabled", /./],
    [{ url: "https://hooks.example.com", secret: "whsec_mine" }, "", /./],
  ] as const)("%j is a 400 naming %s", async ([body, param, message], { app }) => {
    const org = await app.createOrg();
    const res = await app.call("POST", "/v1/billing/webhooks", { key: org.orgKey, body });
    expect(res.status, res.text).toBe(400);
    expect(res.json.error.code).toBe("invalid_request");
    if (param) expect(res.json.error.param).toBe(param);
    expect(res.json.error.message).toMatch(message);
  });

  it("bad JSON is 400 invalid_json; keys other than an org key are refused", async ({ app }) => {
    const org = await app.createOrg();
    const bad = await app.call("POST", "/v1/billing/webhooks", { key: org.orgKey, rawBody: "{" });
    expect(bad.status).toBe(400);
    expect(bad.json.error.code).toBe("invalid_json");
    expect((await app.call("POST", "/v1/billing/webhooks", { body: { url: "https://a.example" } })).status).toBe(401);
    expect(
      (await app.call("POST", "/v1/billing/webhooks", { key: org.gatewayKey, body: { url: "https://a.example" } }))
        .status,
    ).toBe(403);
  });

  it("at most 20 endpoints per organization, also when creations race", async ({ app }) => {
    const org = await app.createOrg();
    const replies = await Promise.all(
      Array.from({ length: 25 }, (_, i) =>
        app.call("POST", "/v1/billing/webhooks", { key: org.orgKey, body: { url: `https://h${i}.example.com` } }),
      ),
    );
    expect(replies.filter((r) => r.status === 201)).toHaveLength(20);
    expect(replies.filter((r) => r.status === 409).map((r) => r.json.error.code)).toEqual(Array(5).fill("conflict"));
  });
});
