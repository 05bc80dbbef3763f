import type { DepositContext } from "../../billing/deposits/context.js";
import type { DepositState } from "../../billing/deposits/lifecycle.js";
import { verifyDeposit } from "../../billing/deposits/verify.js";
import { DepositJob } from "../../jobs/payloads.js";

/**
 * What a deposit check leaves in Redis as its job's result. BullMQ stores a result with
 * JSON.stringify when the job completes, and a value it cannot serialize (a bigint) fails the
 * completed job after the fact: logged as a failure and retried. So results are plain JSON.
 */
export type DepositCheckResult = {
  deposit_id: string;
  state: DepositState;
  confirmations?: string;
  reason?: string;
  waiting?: string;
};

/** A `husd-deposits` job: decide the deposit it names against the chain. */
export async function checkDeposit(ctx: DepositContext, data: unknown): Promise<DepositCheckResult> {
  const depositId = DepositJob.parse(data).deposit_id;
  const outcome = await verifyDeposit(ctx, { depositId });
  return {
    deposit_id: depositId,
    state: outcome.state,
    ...(outcome.confirmations !== undefined ? { confirmations: outcome.confirmations.toString() } : {}),
    ...(outcome.reason !== undefined ? { reason: outcome.reason } : {}),
    ...(outcome.waiting !== undefined ? { waiting: outcome.waiting } : {}),
  };
}
