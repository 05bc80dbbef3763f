import { verifyDeposit, type DepositDeps } from "../../billing/deposits/verify.js";
import type { DepositState } from "../../billing/deposits/record.js";

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

export async function checkDeposit(deps: DepositDeps, depositId: string, now: Date): Promise<DepositCheckResult> {
  const outcome = await verifyDeposit(deps, depositId, now);
  return {
    deposit_id: depositId,
    state: outcome.state,
    ...(outcome.confirmations !== undefined ? { confirmations: outcome.confirmations.toString() } : {}),
    ...(outcome.reason !== undefined ? { reason: outcome.reason } : {}),
    ...(outcome.waiting !== undefined ? { waiting: outcome.waiting } : {}),
  };
}
