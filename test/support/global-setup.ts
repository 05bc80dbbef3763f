import { randomBytes } from "node:crypto";
import postgres from "postgres";
import type { TestProject } from "vitest/node";
import { createSql } from "../../src/db/client.js";
import { readCatalogFile } from "../../src/billing/catalog.js";
import { loadCatalog } from "../../src/billing/load-catalog.js";
import { migrate } from "../../src/db/migrate.js";
import { assertServicesReachable, databaseUrl, TEST_PG_URL } from "./services.js";
import { testContext } from "./context.js";
import { buildPortal } from "../../scripts/portal-build.js";

declare module "vitest" {
  export interface ProvidedContext {
    templateDatabase: string;
    runId: string;
  }
}

/**
 * Runs once per `vitest run`: checks the services, then migrates one template database that
 * every test file clones (CREATE DATABASE … TEMPLATE is far faster than migrating per file).
 */
export default async function setup(project: TestProject) {
  await assertServicesReachable();
  await buildPortal(); // the portal's pages, for test/browser (skipped when dist/portal is of these sources)
  const runId = `${Date.now().toString(36)}${randomBytes(2).toString("hex")}`;
  const template = `hanzo_tpl_${runId}`;
  const admin = postgres(TEST_PG_URL, { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database "${template}"`);
  const sql = createSql(databaseUrl(template), { max: 1 });
  try {
    await migrate(sql);
    await loadCatalog(testContext(sql), { file: await readCatalogFile() }); // every test database starts with the repo's catalog
  } finally {
    await sql.end();
  }
  project.provide("templateDatabase", template);
  project.provide("runId", runId);

  return async () => {
    // Drop whatever this run created, including per-file databases a crashed file left behind.
    const rows = await admin<{ datname: string }[]>`
      select datname from pg_database where datname like ${`hanzo_%${runId}%`}`;
    for (const { datname } of rows) await admin.unsafe(`drop database if exists "${datname}" with (force)`);
    await admin.end();
  };
}
