import { z } from "zod";

/**
 * What each queue's jobs carry. A job is only a nudge: the state it acts on lives in PostgreSQL
 * and every processor re-reads it, so a lost job is re-created by a sweep and a duplicate is
 * harmless. Payloads are plain JSON (BullMQ stores them with JSON.stringify).
 */
export const DepositJob = z.object({ deposit_id: z.string() });
export type DepositJob = z.infer<typeof DepositJob>;

export const LowBalanceAlertJob = z.object({ alert_id: z.string() });
export type LowBalanceAlertJob = z.infer<typeof LowBalanceAlertJob>;

/**
 * Card charges we start ourselves: decide an auto top-up crossing (and run its charge), run a
 * pending auto top-up charge, take the next step of collecting an open invoice (renewal), or ask
 * again for a credit note's card refund left pending (refund: the credit note's id).
 */
export const CardChargeJob = z.object({
  kind: z.enum(["crossing", "charge", "renewal", "refund"]),
  id: z.string(),
});
export type CardChargeJob = z.infer<typeof CardChargeJob>;

/** `webhooks` queue: "fan-out" makes an event's deliveries, "deliver" makes a delivery's next attempt. */
export const WebhookJob = z.union([z.object({ event_id: z.string() }), z.object({ delivery_id: z.string() })]);
export type WebhookJob = z.infer<typeof WebhookJob>;

export const MaintenanceTasks = [
  "expire-holds",
  "expire-grants",
  "resend-alerts",
  "close-cycles",
  "scan-deposits",
  "audit-deposits",
  "check-ledger",
  "card-charges",
  "sweep-webhooks",
  "pay-referrals",
  "ensure-partitions",
] as const;
export const MaintenanceTask = z.enum(MaintenanceTasks);
export type MaintenanceTask = z.infer<typeof MaintenanceTask>;

export const MaintenanceJob = z.object({ task: MaintenanceTask });
export type MaintenanceJob = z.infer<typeof MaintenanceJob>;
