import { describe, expect, it } from "vitest";
import { ConfigError, loadConfig } from "../../src/config.js";
import { redactPassword } from "../../src/ops/preflight.js";
import { describeRedisTarget, parseRedisUrl } from "../../src/redis-url.js";

/** The one problem loadConfig reports for this REDIS_URL (or undefined when it is accepted). */
function redisUrlProblem(value: string): string | undefined {
  try {
    loadConfig({ REDIS_URL: value });
    return undefined;
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    expect(err.problems).toHaveLength(1);
    return err.problems[0];
  }
}

describe("REDIS_URL", () => {
  it("names one Redis as redis:// or rediss://, as before", () => {
    expect(parseRedisUrl("redis://127.0.0.1:6379")).toEqual({ kind: "single", url: "redis://127.0.0.1:6379" });
    expect(parseRedisUrl("rediss://:pw@cache.internal:6380/2")).toEqual({
      kind: "single",
      url: "rediss://:pw@cache.internal:6380/2",
    });
  });

  it("names a cluster by redis-cluster:// and its seed nodes, with credentials for every node", () => {
    expect(parseRedisUrl("redis-cluster://127.0.0.1:7000,127.0.0.1:7001, [::1]:7002")).toEqual({
      kind: "cluster",
      nodes: [
        { host: "127.0.0.1", port: 7000 },
        { host: "127.0.0.1", port: 7001 },
        { host: "::1", port: 7002 },
      ],
      username: undefined,
      password: undefined,
      tls: false,
    });
    expect(parseRedisUrl("rediss-cluster://app:p%40ss@r1.internal:6379,r2.internal:6379/")).toMatchObject({
      kind: "cluster",
      nodes: [
        { host: "r1.internal", port: 6379 },
        { host: "r2.internal", port: 6379 },
      ],
      username: "app",
      password: "p@ss",
      tls: true,
    });
    // One seed is enough: ioredis learns the other nodes from it.
    expect(parseRedisUrl("redis-cluster://10.0.0.5:7000")).toMatchObject({ kind: "cluster", nodes: [{ port: 7000 }] });
  });

  it("names a cluster by several redis:// seeds separated by commas", () => {
    expect(parseRedisUrl("redis://:pw@127.0.0.1:7000,redis://:pw@127.0.0.1:7001")).toEqual({
      kind: "cluster",
      nodes: [
        { host: "127.0.0.1", port: 7000 },
        { host: "127.0.0.1", port: 7001 },
      ],
      username: undefined,
      password: "pw",
      tls: false,
    });
  });

  it.for([
    ["http://127.0.0.1:6379", /scheme http: is not Redis/],
    ["127.0.0.1:6379", /is not a URL/],
    ["redis-cluster://127.0.0.1:7000,redis://127.0.0.1:7001", /no scheme of their own/],
    ["redis-cluster://", /at least one seed node/],
    ["redis-cluster://127.0.0.1", /cluster seed "127.0.0.1" must be host:port/],
    ["redis-cluster://127.0.0.1:7000,", /cluster seed "" must be host:port/],
    ["redis-cluster://127.0.0.1:70000", /port from 1 to 65535/],
    ["redis-cluster://127.0.0.1:7000/1", /no path or options/],
    ["redis://127.0.0.1:7000,redis://127.0.0.1:7001/3", /database path/],
    ["redis://a:7000,redis://b", /seed b needs a port/],
    ["redis://:x@a:7000,redis://:y@b:7001", /same scheme and credentials/],
    ["redis://a:7000,,redis://b:7001", /seed 2 of the comma-separated list is empty/],
  ] as const)("refuses %s, saying what is wrong", ([value, message]) => {
    const problem = redisUrlProblem(value);
    expect(problem).toMatch(/^REDIS_URL: /);
    expect(problem).toMatch(message);
  });

  it("never repeats a password in a message or a log", () => {
    expect(redisUrlProblem("redis-cluster://u:hunter2@127.0.0.1")).not.toContain("hunter2");
    expect(redisUrlProblem("127.0.0.1:hunter2@x")).not.toContain("hunter2");
    expect(redactPassword("redis-cluster://u:hunter2@a:1,b:2")).toBe("redis-cluster://u:***@a:1,b:2");
    expect(redactPassword("redis://:hunter2@a:1,redis://:hunter2@b:2")).toBe("redis://:***@a:1,redis://:***@b:2");
    expect(describeRedisTarget(parseRedisUrl("redis-cluster://u:hunter2@a:1,b:2"))).toBe(
      "Redis Cluster (seeds a:1, b:2)",
    );
  });

  it("refuses a REDIS_PREFIX with braces: it is written inside the hash tag", () => {
    expect(() => loadConfig({ REDIS_PREFIX: "{x}" })).toThrow(/REDIS_PREFIX: must not contain \{ or \}/);
  });
});
