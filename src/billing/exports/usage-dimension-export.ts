import type { BillingContext } from "../context.js";
import { type UsageDimension, type UsageGroupLine, usageReport } from "../usage-report.js";
import type { ExportPeriod } from "./export-period.js";

/**
 * A usage export grouped by one dimension of the usage report (`product`, `model`, `key`,
 * `project`): the rows are the report's own `groups` for `group_by=<dimension>` over the same
 * period, so the CSV's figures are the report's (and the billing portal's Cost view's) exactly.
 * One row per value of the dimension: a handful to a few thousand, read in one piece.
 */
export async function* usageDimensionForExport(
  ctx: BillingContext,
  input: { orgId: string; period: ExportPeriod; dimension: UsageDimension },
): AsyncGenerator<UsageGroupLine[]> {
  const report = await usageReport(ctx, {
    orgId: input.orgId,
    period: { label: "export", ...input.period },
    groupBy: [input.dimension],
  });
  yield report.groups ?? [];
}

/** The CSV column naming a dimension's value: the key's column is its id, as in the event export. */
export const dimensionColumn = (d: UsageDimension) => (d === "key" ? "api_key_id" : d);

/** A group's value of the dimension: null where unattributed (no key, no project) or no model. */
export function dimensionValue(g: UsageGroupLine, d: UsageDimension): string | null {
  const v = g[d];
  return v === undefined || v === "" ? null : v;
}
