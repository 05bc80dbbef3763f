import postgres from "postgres";

export type Sql = postgres.Sql<{ bigint: bigint }>;
export type TransactionSql = postgres.TransactionSql<{ bigint: bigint }>;

/** Our tables live in this schema, apart from Ponder's. */
export const APP_SCHEMA = "billing";

/**
 * One client factory for every process. int8 comes back as a JS bigint (money is never a
 * float); numeric stays a string and is converted where it is read.
 */
export function createSql(
  url: string,
  opts: {
    max?: number;
    applicationName?: string;
    debug?: postgres.Options<{}>["debug"];
    /** Seconds to wait for a connection (postgres.js' default is 30): a read replica that is away should cost little. */
    connectTimeoutSeconds?: number;
    /** PostgreSQL's notices (dropped by default), e.g. a test reading what auto_explain reports at notice level. */
    onNotice?: (notice: postgres.Notice) => void;
  } = {},
): Sql {
  return postgres(url, {
    max: opts.max ?? 10,
    ...(opts.connectTimeoutSeconds ? { connect_timeout: opts.connectTimeoutSeconds } : {}),
    ...(opts.debug ? { debug: opts.debug } : {}),
    types: { bigint: postgres.BigInt },
    connection: { search_path: `${APP_SCHEMA},public`, application_name: opts.applicationName ?? "hanzo-billing" },
    onnotice: opts.onNotice ?? (() => {}),
  }) as Sql;
}
