import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.js";

describe("loadConfig", () => {
  it("works with no environment at all, using this machine's defaults", () => {
    const config = loadConfig({});
    expect(config.DATABASE_URL).toBe("postgres://hanzo_app_user@127.0.0.1:5432/hanzo_billing");
    expect(config.DATABASE_OWNER_URL).toBe("postgres://postgres@127.0.0.1:5432/hanzo_billing");
    expect(config.INDEXER_DATABASE_URL).toBe("postgres://hanzo_indexer_user@127.0.0.1:5432/hanzo_billing");
    expect(config.REDIS_URL).toBe("redis://127.0.0.1:6379");
    expect(config.CHAIN_ID).toBe(36963);
    expect(config.HUSD_ADDRESS).toBe("0xe9e32EF8aaECB68794Da3E1E9191b0a64CeC2c83");
    expect(config.FINALITY_REQUIRE_FINALIZED_TAG).toBe(true);
    expect(config.ADMIN_API_KEY).toBeUndefined();
  });

  it("takes the owner's and the indexer's database from DATABASE_URL unless they are set", () => {
    const derived = loadConfig({ DATABASE_URL: "postgres://billing:s3cret@db.internal:6432/prod?sslmode=require" });
    // Same server, database and options; another user, and never the app's password.
    expect(derived.DATABASE_OWNER_URL).toBe("postgres://postgres@db.internal:6432/prod?sslmode=require");
    expect(derived.INDEXER_DATABASE_URL).toBe("postgres://hanzo_indexer_user@db.internal:6432/prod?sslmode=require");
    const set = loadConfig({
      DATABASE_OWNER_URL: "postgres://owner:a@db/prod",
      INDEXER_DATABASE_URL: "postgres://indexer:b@db/prod",
    });
    expect(set).toMatchObject({
      DATABASE_OWNER_URL: "postgres://owner:a@db/prod",
      INDEXER_DATABASE_URL: "postgres://indexer:b@db/prod",
    });
  });

  it("coerces numbers and booleans from strings", () => {
    const config = loadConfig({
      PORT: "8080",
      CHAIN_ID: "36964",
      FINALITY_REQUIRE_FINALIZED_TAG: "false",
      FINALITY_CONFIRMATIONS: "3",
    });
    expect(config).toMatchObject({
      PORT: 8080,
      CHAIN_ID: 36964,
      FINALITY_REQUIRE_FINALIZED_TAG: false,
      FINALITY_CONFIRMATIONS: 3,
    });
  });

  it("treats an empty variable as unset", () => {
    expect(loadConfig({ PORT: "" }).PORT).toBe(3000);
  });

  it("names every bad variable at once", () => {
    let error: unknown;
    try {
      loadConfig({ PORT: "eighty", HUSD_ADDRESS: "0x123", DATABASE_URL: "not a url", ADMIN_API_KEY: "secret" });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    const problems = (error as ConfigError).problems.map((p) => p.split(":")[0]).sort();
    expect(problems).toEqual(["ADMIN_API_KEY", "DATABASE_URL", "HUSD_ADDRESS", "PORT"]);
    expect((error as ConfigError).message).toContain("HUSD_ADDRESS: must be a 0x-prefixed 20-byte hex address");
  });

  it("rejects a dust minimum that is not whole base units", () => {
    expect(() => loadConfig({ HUSD_DUST_MINIMUM: "0.5" })).toThrow(/HUSD_DUST_MINIMUM/);
  });
});
