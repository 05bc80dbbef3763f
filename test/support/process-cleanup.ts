import { afterAll } from "vitest";
import { killAllTracked } from "./process.js";

// Runs after each test file's own afterAll hooks (and before its file-scoped fixtures are torn
// down): whatever the file started and did not stop (a failed beforeAll, a test that threw before
// its cleanup) is killed here, not left running.
afterAll(() => {
  killAllTracked();
});
