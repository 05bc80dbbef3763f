import { join } from "node:path";
import { pathToFileURL } from "node:url";
import { afterAll, beforeAll, describe, expect, it } from "vitest";
import * as ponderSchema from "../../ponder.schema.js";
import { indexedTransfersQuery, scanIndexedTransfers } from "../../src/billing/deposits/scan.js";
import { testContext } from "../support/context.js";
import { loadConfig } from "../../src/config.js";
import { createTestDatabase, type TestDatabase } from "../support/database.js";
import { ROOT } from "../support/process.js";

type PlanNode = { "Node Type": string; "Relation Name"?: string; "Index Name"?: string; Plans?: PlanNode[] };
type PonderSql = { tables: { sql: string[]; json: { tableName: string }[] }; indexes: { sql: string[] } };

const CHAIN_ID = 31337;
const HUSD = "0x5fbdb2315678afecb367f032d93f642f64180aa3";
const BUILD_SCHEMA = "husd_indexer_plantest";
const TRANSFERS = 100_000;
const DEPOSIT_ADDRESSES = 200;
const PER_ADDRESS = 3;

/** Every node of an EXPLAIN (format json) plan, depth first. */
const nodesOf = (node: PlanNode): PlanNode[] => [node, ...(node.Plans ?? []).flatMap(nodesOf)];

/**
 * The scan against Ponder's table as Ponder 0.16 makes it: the CREATE TABLE and CREATE INDEX
 * statements come from Ponder's own generator (the one `ponder start` runs) applied to our
 * ponder.schema.ts, and the stable view is the one Ponder's createViews writes. The rows are
 * shaped like mainnet: HUSD is everyone's stablecoin, so Ponder holds far more transfers between
 * strangers than to our deposit addresses. Hex is lowercase, as Ponder's hex column writes it.
 */
describe("the indexed-transfer scan uses Ponder's index on husd_transfer.to", () => {
  let db: TestDatabase;
  const config = loadConfig({ CHAIN_ID: String(CHAIN_ID), HUSD_ADDRESS: HUSD, HUSD_DUST_MINIMUM: "1" });
  const credited = Math.floor((DEPOSIT_ADDRESSES * PER_ADDRESS * 9) / 10);

  beforeAll(async () => {
    db = await createTestDatabase();
    // Ponder's package exports do not expose its DDL generator; it is the file `ponder start` runs.
    const kit = (await import(pathToFileURL(join(ROOT, "node_modules/ponder/dist/esm/drizzle/kit/index.js")).href)) as {
      getSql(schema: Record<string, unknown>): PonderSql;
    };
    const ddl = kit.getSql(ponderSchema);
    await db.sql.begin(async (tx) => {
      await tx.unsafe(`create schema "${BUILD_SCHEMA}"`);
      // Ponder runs its statements with search_path set to the build's schema.
      await tx.unsafe(`set local search_path to "${BUILD_SCHEMA}"`);
      for (const [i, statement] of ddl.tables.sql.entries())
        if (!ddl.tables.json[i]!.tableName.startsWith("_reorg__")) await tx.unsafe(statement);
      for (const statement of ddl.indexes.sql) await tx.unsafe(statement);
      await tx.unsafe(`create schema "${config.PONDER_SCHEMA}"`);
      await tx.unsafe(
        `create view "${config.PONDER_SCHEMA}"."husd_transfer" as select * from "${BUILD_SCHEMA}"."husd_transfer"`,
      );
    });

    // DEPOSIT_ADDRESSES organizations with their addresses; each received PER_ADDRESS transfers
    // among TRANSFERS, the rest go between ~75,000 other addresses.
    const hex = (expr: string, bytes: number) => `'0x' || substr(md5(${expr}) || md5('x' || ${expr}), 1, ${bytes * 2})`;
    await db.sql.unsafe(
      `insert into organizations (id, name) select 'org_plan' || i, 'Plan ' || i from generate_series(1, ${DEPOSIT_ADDRESSES}) i`,
    );
    await db.sql.unsafe(`insert into deposit_addresses (org_id, chain_id, factory_address, salt, address)
      select 'org_plan' || i, ${CHAIN_ID}, '0x' || repeat('f', 40), 'salt' || i, ${hex("'deposit' || i", 20)} from generate_series(1, ${DEPOSIT_ADDRESSES}) i`);
    const toDeposit = Math.floor(TRANSFERS / (DEPOSIT_ADDRESSES * PER_ADDRESS));
    await db.sql.unsafe(`insert into "${BUILD_SCHEMA}".husd_transfer (id, chain_id, token_address, "from", "to", amount, block_number, block_hash, block_timestamp, transaction_hash, log_index)
      select 'log' || i, ${CHAIN_ID}, '${HUSD}', ${hex("'payer' || (i % 5000)", 20)},
             case when i % ${toDeposit} = 0 then ${hex(`'deposit' || (1 + (i / ${toDeposit}) % ${DEPOSIT_ADDRESSES})`, 20)} else ${hex("'stranger' || (i % 75000)", 20)} end,
             (10 + i % 1000)::numeric * 10000000000000000, 1000 + i / 10, ${hex("'block' || (i / 10)", 32)}, 1700000000 + i / 10, ${hex("'tx' || i", 32)}, i % 10
      from generate_series(1, ${TRANSFERS}) i`);
    // Most of the transfers to deposit addresses are deposits already (the scan's steady state).
    await db.sql.unsafe(`insert into husd_deposits (id, chain_id, tx_hash, ordinal, log_index, block_number, block_hash, token_address, from_address, to_address, org_id, amount,
                                                    amount_nano_usd, state, source, seen_at, updated_at, credit_count)
      select 'dep_plan' || t.id, t.chain_id, t.transaction_hash, 0, t.log_index, t.block_number, t.block_hash, t.token_address, t."from", t."to", d.org_id, t.amount,
             (t.amount / 1000000000)::bigint, 'credited', 'indexer', now(), now(), 1
      from "${BUILD_SCHEMA}".husd_transfer t join deposit_addresses d on d.address = t."to"
      order by t.id limit ${credited}`);
    await db.sql.unsafe(
      `analyze "${BUILD_SCHEMA}".husd_transfer; analyze deposit_addresses; analyze husd_deposits; analyze organizations`,
    );
  }, 120_000);
  afterAll(() => db?.drop());

  it('reads husd_transfer through its index on "to", never by a sequential scan', async () => {
    const [row] = await db.sql.unsafe<{ "QUERY PLAN": [{ Plan: PlanNode }] }[]>(
      `explain (format json) ${indexedTransfersQuery(config.PONDER_SCHEMA)}`,
    );
    const nodes = nodesOf(row!["QUERY PLAN"][0].Plan);
    const shape = nodes.map(
      (n) =>
        `${n["Node Type"]}${n["Relation Name"] ? ` on ${n["Relation Name"]}` : ""}${n["Index Name"] ? ` using ${n["Index Name"]}` : ""}`,
    );
    expect(
      shape.filter((s) => s.startsWith("Seq Scan on husd_transfer")),
      shape.join("\n"),
    ).toEqual([]);
    expect(
      nodes.some((n) => n["Index Name"] === "husd_transfer_to_index"),
      shape.join("\n"),
    ).toBe(true);
  });

  it("finds exactly the transfers to deposit addresses that are not deposits yet, comparing Ponder's lowercase hex as stored", async () => {
    const [{ n: toDeposits }] = (await db.sql.unsafe(
      `select count(*)::int as n from "${BUILD_SCHEMA}".husd_transfer t join deposit_addresses d on d.address = t."to"`,
    )) as unknown as [{ n: number }];
    expect(toDeposits).toBeGreaterThan(credited);
    const recorded = await scanIndexedTransfers({ ...testContext(db.sql), sql: db.sql, config });
    expect(recorded).toBe(toDeposits - credited);
    const [counts] = await db.sql<
      { seen: number; all: number }[]
    >`select count(*) filter (where state = 'seen')::int as seen, count(*)::int as all from husd_deposits`;
    expect(counts).toEqual({ seen: toDeposits - credited, all: toDeposits });
    expect(await scanIndexedTransfers({ ...testContext(db.sql), sql: db.sql, config })).toBe(0);
  });

  it("our side of the comparison is lowercase by rule: mixed-case hex is refused (migration 0020)", async () => {
    await expect(db.sql`insert into deposit_addresses (org_id, chain_id, factory_address, salt, address)
      values ('org_plan1', ${CHAIN_ID + 1}, '0xf', 's', '0xAbC0000000000000000000000000000000000000')`).rejects.toThrow(
      /deposit_addresses_address_lowercase/,
    );
    await expect(
      db.sql`update husd_deposits set tx_hash = upper(tx_hash) where id = (select min(id) from husd_deposits)`,
    ).rejects.toThrow(/husd_deposits_hex_lowercase/);
  });
});
