import { describe, expect } from "vitest";
import { manualClock } from "../../../support/app.js";
import { appTest as it } from "../../../support/fixtures.js";

// Which secrets sign during and after the window: test/events/webhook-delivery.test.ts.
describe("POST /v1/billing/webhooks/{id}/rotate-secret (rotateWebhookSecret)", () => {
  const clock = manualClock(new Date("2026-11-15T12:00:00Z"));
  it.scoped({ appOptions: { clock } });

  it("returns a new secret once; the old one stays valid for 24 hours", async ({ app, db }) => {
    const org = await app.createOrg();
    const made = await app.call("POST", "/v1/billing/webhooks", {
      key: org.orgKey,
      body: { url: "https://a.example.com" },
    });
    const res = await app.call("POST", `/v1/billing/webhooks/${made.json.id}/rotate-secret`, { key: org.orgKey });
    expect(res.status).toBe(200);
    expect(res.json.secret).toMatch(/^whsec_/);
    expect(res.json.secret).not.toBe(made.json.secret);
    expect(res.json.previous_secret_expires_at).toBe("2026-11-16T12:00:00.000Z");
    const [row] = await db.sql`select secret, previous_secret from webhook_endpoints where id = ${made.json.id}`;
    expect(row).toEqual({ secret: res.json.secret, previous_secret: made.json.secret });
    expect((await app.call("POST", "/v1/billing/webhooks/wh_nope/rotate-secret", { key: org.orgKey })).status).toBe(
      404,
    );
  });

  it("another org's endpoint is a 404 and keeps its secret; racing rotations leave one previous secret", async ({
    app,
    db,
  }) => {
    const owner = await app.createOrg();
    const intruder = await app.createOrg();
    const made = await app.call("POST", "/v1/billing/webhooks", {
      key: owner.orgKey,
      body: { url: "https://a.example.com" },
    });
    const res = await app.call("POST", `/v1/billing/webhooks/${made.json.id}/rotate-secret`, { key: intruder.orgKey });
    expect(res.status).toBe(404);
    expect(res.text).not.toContain("whsec_");
    const [row] = await db.sql`select secret, previous_secret from webhook_endpoints where id = ${made.json.id}`;
    expect(row).toEqual({ secret: made.json.secret, previous_secret: null });

    // Two rotations at once are ordered by the endpoint's row: each secret returned was current
    // once, and the final pair is (the later one, the earlier one).
    const both = await Promise.all(
      [1, 2].map(() => app.call("POST", `/v1/billing/webhooks/${made.json.id}/rotate-secret`, { key: owner.orgKey })),
    );
    expect(both.map((r) => r.status)).toEqual([200, 200]);
    const [after] = await db.sql<{ secret: string; previous_secret: string }[]>`
      select secret, previous_secret from webhook_endpoints where id = ${made.json.id}`;
    const secrets = both.map((r) => r.json.secret as string);
    expect(new Set(secrets).size).toBe(2);
    expect(secrets).toContain(after?.secret);
    expect(secrets).toContain(after?.previous_secret);
  });
});
