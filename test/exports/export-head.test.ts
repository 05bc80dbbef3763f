import { describe, expect } from "vitest";
import { appTest as it } from "../support/fixtures.js";
import { seedUsageEvents } from "../support/seed-usage.js";

/**
 * A HEAD on an export route gets the GET's headers and no body, and takes nothing. The router
 * answers a HEAD with the GET's handler and drops the body without cancelling it: the CSV stream
 * made for it held its export slot (and its cursor's connection) for as long as the process lived,
 * so two HEADs by one organization left every export of that API process refused with 429, for
 * every organization (helper-90).
 */
describe("HEAD /v1/billing/exports/*.csv", () => {
  it("answers the headers, and leaves every export slot free", async ({ app, db }) => {
    const org = await app.createOrg("Heads");
    await seedUsageEvents(db.sql, {
      orgId: org.id,
      count: 3_000, // more than one batch of the export's cursor
      start: new Date(Date.now() - 10 * 86_400_000),
      spacingMs: 60_000,
      label: "head",
    });
    const other = await app.createOrg("Other");
    const day = (offsetDays: number) => new Date(Date.now() + offsetDays * 86_400_000).toISOString().slice(0, 10);
    const period = `start=${day(-20)}&end=${day(2)}`;
    for (const path of [
      `/v1/billing/exports/usage.csv?group_by=event&${period}`,
      `/v1/billing/exports/usage.csv?group_by=day&${period}`,
      `/v1/billing/exports/usage.csv?group_by=model&${period}`,
      `/v1/billing/exports/transactions.csv?${period}`,
      `/v1/billing/exports/invoice-lines.csv?${period}`,
    ]) {
      for (let i = 0; i < 3; i++) {
        const head = await app.call("HEAD", path, { key: org.orgKey });
        expect({ status: head.status, type: head.headers.get("content-type"), body: head.text }, path).toEqual({
          status: 200,
          type: "text/csv; charset=utf-8",
          body: "",
        });
      }
    }
    // More GETs than the process's export slots (EXPORTS_MAX_CONCURRENT, 2), one after another.
    for (let i = 0; i < 3; i++) {
      const get = await app.call("GET", `/v1/billing/exports/transactions.csv?${period}`, { key: other.orgKey });
      expect(get.status, get.text.slice(0, 200)).toBe(200);
    }
    const full = await app.call("GET", `/v1/billing/exports/usage.csv?group_by=event&${period}`, { key: org.orgKey });
    expect(full.text.trim().split("\n")).toHaveLength(3_001);
  });
});
