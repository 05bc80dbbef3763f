/** Ledger account ids. An organization has two: what it can spend, and what live holds reserve. */
export const orgCreditsAccount = (orgId: string) => `org:${orgId}:credits`;
export const orgHeldAccount = (orgId: string) => `org:${orgId}:held`;

export const SystemAccounts = {
  grants: "system:grants",
  grantExpiry: "system:grant_expiry",
  husd: "system:husd",
  card: "system:card",
  revenue: "system:revenue",
} as const;
