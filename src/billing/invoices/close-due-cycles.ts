import { BillingError } from "../../errors.js";
import { at, type BillingContext } from "../context.js";
import type { Period } from "../periods.js";
import { closeCycle } from "./close-cycle.js";
import { dueCycles, type DueCyclesInput } from "./due-cycles.js";

/** Closes every due cycle (of one org or all), a few organizations at a time. */
export async function closeDueCycles(
  ctx: BillingContext,
  input: DueCyclesInput & { concurrency?: number } = {},
): Promise<{ created: number; existing: number; orgs: number; endedByKey: boolean }> {
  // One instant for the whole run: every cycle is judged due, and closed, at the same time.
  const fixed = at(ctx, ctx.clock());
  await ctx.catalog.refresh();
  const { cycles: due, endedByKey } = await dueCycles(fixed, input);
  // Cycles of one org must close in order; different orgs close in parallel.
  const byOrg = new Map<string, { period: Period; requestKey?: string | undefined }[]>();
  for (const d of due) byOrg.set(d.orgId, [...(byOrg.get(d.orgId) ?? []), d]);
  const queue = [...byOrg.entries()];
  let created = 0;
  let existing = 0;
  const failed: { orgId: string; error: unknown }[] = [];
  async function worker() {
    for (let next = queue.shift(); next; next = queue.shift()) {
      const [orgId, periods] = next;
      try {
        for (const { period, requestKey } of periods) {
          const r = await closeCycle(fixed, { orgId, period, requestKey });
          if (r.created) created++;
          else existing++;
        }
      } catch (error) {
        // One org's failure must not stop the others' invoicing; its later cycles wait for the
        // next run, as they must close in order.
        failed.push({ orgId, error });
      }
    }
  }
  await Promise.all(Array.from({ length: input.concurrency ?? 4 }, worker));
  // One organization's refusal (an early end its subscription does not allow) is answered as it is.
  const [only] = failed;
  if (input.orgId && failed.length === 1 && only?.error instanceof BillingError) throw only.error;
  if (failed.length > 0) {
    throw new AggregateError(
      failed.map((f) => f.error),
      `closed ${created} cycles, but ${failed.length} organization(s) failed: ${failed.map((f) => `${f.orgId}: ${f.error instanceof Error ? f.error.message : String(f.error)}`).join("; ")}`,
    );
  }
  return { created, existing, orgs: byOrg.size, endedByKey };
}

/**
 * Closes the org's cycles that have ended, in order, failing with the first error as it is (a
 * change to the subscription then waits: it must not reach back into a cycle not yet closed).
 * Call with a fixed clock; the catalog refreshed.
 */
export async function closeEndedCycles(ctx: BillingContext, input: { orgId: string }): Promise<void> {
  const { cycles } = await dueCycles(ctx, { orgId: input.orgId });
  for (const { period } of cycles) await closeCycle(ctx, { orgId: input.orgId, period });
}
