/**
 * Ledger account ids. An organization has one, its credits: the balance, with what its live holds
 * reserve (`held`, migration 0037). Organizations made before then also have an `org:<id>:held`
 * account, where holds used to move their money; it stays, emptied, with its history.
 */
export const orgCreditsAccount = (orgId: string) => `org:${orgId}:credits`;

export const SystemAccounts = {
  grants: "system:grants",
  grantExpiry: "system:grant_expiry",
  husd: "system:husd",
  card: "system:card",
  revenue: "system:revenue",
} as const;
