import { performance } from "node:perf_hooks";
import { describe, expect } from "vitest";
import { KEY_CACHE_TTL_MS, KeyCache, revokeApiKey, type Principal } from "../../src/billing/api-keys.js";
import { createTestApp, TEST_ADMIN_KEY } from "../support/app.js";
import { appTest as it } from "../support/fixtures.js";
import { testContext } from "../support/context.js";
import { waitFor } from "../support/process.js";

/**
 * The key cache's two safety properties, each without the other: an answer read before a
 * revocation is never stored after it, and a process that hears nothing trusts a key for less
 * than KEY_CACHE_TTL_MS after the revocation committed. Two API processes together (NOTIFY):
 * test/e2e/replica-propagation.test.ts.
 */
describe("key revocation and the key cache", () => {
  it("a lookup that began before a revocation was heard cannot store its answer after it", () => {
    const cache = new KeyCache();
    const principal: Principal = { keyId: "key_a", orgId: "org_a", scope: "org", permissions: [] };
    const lookup = cache.begin(performance.now()); // read from PostgreSQL: not revoked yet
    cache.revoked("key_a"); // the revocation is heard while that read is on its way back
    cache.set("digest-a", principal, lookup);
    expect(cache.get("digest-a", performance.now())).toBeUndefined();
    // The same for a reconnection of the listener (revocations may have been missed).
    const again = cache.begin(performance.now());
    cache.clear();
    cache.set("digest-a", principal, again);
    expect(cache.get("digest-a", performance.now())).toBeUndefined();
    // A lookup that began after both is stored, for KEY_CACHE_TTL_MS from its start.
    const fresh = cache.begin(1_000);
    cache.set("digest-a", principal, fresh);
    expect(cache.get("digest-a", 1_000 + KEY_CACHE_TTL_MS - 1)).toEqual(principal);
    expect(cache.get("digest-a", 1_000 + KEY_CACHE_TTL_MS)).toBeUndefined();
  });

  it("a process that never hears of a revocation refuses the key within 1 s of its commit", async ({ db, app }) => {
    const deaf = createTestApp({ sql: db.appSql, extra: { keyCache: new KeyCache() } }); // its cache listens to nothing
    const org = await app.createOrg();
    const key = await app.call("POST", `/v1/admin/orgs/${org.id}/keys`, {
      key: TEST_ADMIN_KEY,
      body: { scope: "org" },
    });
    expect((await deaf.call("GET", "/v1/billing/balance", { key: key.json.key })).status).toBe(200); // now cached there
    await revokeApiKey(testContext(db.appSql), { keyId: key.json.id }); // through another process
    const committedAt = performance.now();
    let lastAcceptedSentAt = committedAt;
    await waitFor(
      async () => {
        const sentAt = performance.now();
        const refused = (await deaf.call("GET", "/v1/billing/balance", { key: key.json.key })).status === 401;
        if (!refused) lastAcceptedSentAt = sentAt;
        return refused;
      },
      { intervalMs: 0, timeoutMs: 10_000, what: "the revoked key refused" },
    );
    // A request the cache still served was looked up after it was sent, so the entry was live
    // then: no request sent more than 1 s after the commit may have been served. (Judged on the
    // accepted ones, a slow machine cannot fail it: the first refused poll may end late.)
    expect(lastAcceptedSentAt - committedAt).toBeLessThanOrEqual(1_000);
  });
});
