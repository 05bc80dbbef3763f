import { createGatewayKey } from "../src/billing/api-keys.js";
import { readCatalogFile } from "../src/billing/catalog.js";
import { at, createBillingContext } from "../src/billing/context.js";
import { grantCredits } from "../src/billing/grants.js";
import { loadCatalog } from "../src/billing/load-catalog.js";
import { createOrganization } from "../src/billing/organizations.js";
import type { Sql } from "../src/db/client.js";
import { migrate } from "../src/db/migrate.js";

/**
 * The metering benches' database: migrated (by `opts.migrate`'s migrations and functions if given), the catalog loaded, one hot org with 1,000,000 USD of
 * credits and `orgs` (1,000) orgs with 10,000 USD each, and a gateway key to drive the API with.
 */
export async function seedMeteringOrgs(
  sql: Sql,
  opts: { orgs?: number; migrate?: Parameters<typeof migrate>[1] } = {},
) {
  const orgs = opts.orgs ?? 1000;
  await migrate(sql, opts.migrate);
  // An earlier build's schema (BENCH_BEFORE) from before migration 0047 has no idempotency key on
  // organizations, which this tree's createOrganization writes: a column for the seeding only,
  // dropped after it so that the later build's migrations add it as they would.
  const [schema] = await sql<{ lacksOrgKey: boolean }[]>`
    select not exists (select from information_schema.columns
                       where table_name = 'organizations' and column_name = 'idempotency_key') as "lacksOrgKey"`;
  const lacksOrgKey = schema?.lacksOrgKey === true;
  if (lacksOrgKey) await sql`alter table organizations add column idempotency_key text unique`;
  const ctx = createBillingContext({ sql });
  await loadCatalog(ctx, { file: await readCatalogFile() });
  const now = new Date();
  const hotOrg = await createOrganization(ctx, { name: "hot" });
  await grantCredits(at(ctx, now), {
    orgId: hotOrg.id,
    amount: 1_000_000n * 1_000_000_000n,
    reason: "bench",
    idempotencyKey: "bench",
  });
  const many: string[] = [];
  for (let i = 0; i < orgs; i++) {
    const org = await createOrganization(ctx, { name: `org-${i}` });
    await grantCredits(at(ctx, now), {
      orgId: org.id,
      amount: 10_000n * 1_000_000_000n,
      reason: "bench",
      idempotencyKey: "bench",
    });
    many.push(org.id);
  }
  const gateway = await createGatewayKey(ctx, { name: "bench gateway" });
  if (lacksOrgKey) await sql`alter table organizations drop column idempotency_key`;
  return { hotOrgId: hotOrg.id, many, gatewayKey: gateway.key };
}
