import { mkdir, readFile, writeFile } from "node:fs/promises";
import { dirname, join } from "node:path";
import { CLIENT_TYPES_FILE, ROOT, renderClientTypes, servedOpenApiDocument } from "../scripts/openapi-client.js";

// `npm run client:generate`: rewrites client/openapi.d.ts from the document the API serves.
// Run it after changing a route's schema, and commit the result (a test fails while it is stale).

const path = join(ROOT, CLIENT_TYPES_FILE);
const contents = await renderClientTypes(await servedOpenApiDocument());
const current = await readFile(path, "utf8").catch(() => null);
if (current === contents) {
  console.log(`${CLIENT_TYPES_FILE} already up to date`);
} else {
  await mkdir(dirname(path), { recursive: true });
  await writeFile(path, contents);
  console.log(`wrote ${CLIENT_TYPES_FILE}`);
}
