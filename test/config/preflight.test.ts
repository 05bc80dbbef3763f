import { describe, expect, it } from "vitest";
import { checkServices, START_POSTGRES, startRedisCommand } from "../../src/ops/preflight.js";
import { freePort } from "../support/free-port.js";
import { TEST_PG_URL, TEST_REDIS_URL } from "../support/services.js";

describe("service preflight", () => {
  it("passes when PostgreSQL and Redis answer", async () => {
    expect(await checkServices({ postgres: TEST_PG_URL, redis: TEST_REDIS_URL })).toEqual([]);
  });

  it("names the URL that failed and the command that starts it", async () => {
    const port = await freePort(); // nothing listens here
    const problems = await checkServices({
      postgres: `postgres://postgres:secret@127.0.0.1:${port}/x`,
      redis: `redis://127.0.0.1:${port}`,
    });
    expect(problems).toHaveLength(2);
    expect(problems[0]).toContain(`127.0.0.1:${port}`);
    expect(problems[0]).toContain(START_POSTGRES);
    expect(problems[0]).not.toContain("secret");
    expect(problems[1]).toContain(`redis://127.0.0.1:${port}`);
    // The command starts Redis where REDIS_URL points, not on 6379 whatever it says.
    expect(problems[1]).toContain(startRedisCommand(`redis://127.0.0.1:${port}`));
    expect(problems[1]).toContain(`--port ${port}`);
  });
});
