import postgres from "postgres";

/** Creates the database named in `url` when it is missing, so a fresh machine needs no manual createdb. */
export async function ensureDatabase(url: string): Promise<boolean> {
  const target = new URL(url);
  const name = decodeURIComponent(target.pathname.replace(/^\//, ""));
  if (!/^[A-Za-z0-9_]+$/.test(name)) throw new Error(`database name "${name}" must be letters, digits and _`);
  const admin = new URL(url);
  admin.pathname = "/postgres";
  const sql = postgres(admin.toString(), { max: 1, onnotice: () => {} });
  try {
    const rows = await sql`select 1 from pg_database where datname = ${name}`;
    if (rows.length > 0) return false;
    await sql.unsafe(`create database "${name}"`).catch((err: { code?: string }) => {
      if (err.code !== "42P04") throw err; // created by a concurrent starter: fine
    });
    return true;
  } finally {
    await sql.end();
  }
}
