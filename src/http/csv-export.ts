import { stringify } from "csv-stringify/sync";
import type { Context } from "hono";
import { BillingError } from "../errors.js";
import type { AppDeps, AppEnv } from "./context.js";

/** A cell: text as is, null as an empty cell. */
export type Cell = string | null;

/**
 * A cell whose text a customer (or anyone but us) chose: project names, descriptions, metadata.
 * A spreadsheet runs a cell that starts with `=`, `+`, `-` or `@` (or a tab or carriage return,
 * which some strip first) as a formula, so such a cell is prefixed with a single quote, as OWASP's
 * CSV injection advice says; csv-stringify then quotes whatever needs quoting. Numbers and amounts
 * we format ourselves never go through here (a negative amount stays a number).
 */
export function textCell(text: string | null | undefined): Cell {
  if (text === null || text === undefined) return null;
  return /^[=+\-@\t\r]/.test(text) ? `'${text}` : text;
}

/** The export slots of each app: how many exports it streams at once (EXPORTS_MAX_CONCURRENT). */
const running = new WeakMap<AppDeps, { count: number }>();

/**
 * Takes one of the app's export slots, or refuses with 429: an export holds a database connection
 * for as long as its client reads, so a few slow exports must not take the whole pool from metering.
 * Returns the release (idempotent).
 */
function takeExportSlot(c: Context<AppEnv>): () => void {
  const deps = c.get("deps");
  let slots = running.get(deps);
  if (!slots) {
    slots = { count: 0 };
    running.set(deps, slots);
  }
  if (slots.count >= deps.config.EXPORTS_MAX_CONCURRENT) {
    c.header("Retry-After", "5");
    throw new BillingError("rate_limited", "too many exports are running on this server; retry in a few seconds");
  }
  slots.count++;
  let released = false;
  const held = slots;
  return () => {
    if (released) return;
    released = true;
    held.count--;
  };
}

/**
 * Streams rows as a CSV attachment (`text/csv; charset=utf-8`): a header line of `columns`, then
 * each batch `rows` yields, turned into cells by `cells` and into CSV text by csv-stringify, one
 * batch at a time. Pull-based: the next batch is read from `rows` (a database cursor) only when
 * the client has taken the previous one (node's write buffer drained), so however long the export,
 * at most a batch or two is in memory. A client that goes away cancels the stream, which ends
 * `rows` early: its cursor is closed and the connection goes back to the pool. A failure after the
 * first byte can no longer be a 4xx: the response is cut off (no terminating chunk), which a client
 * sees as an incomplete download rather than a short file that looks whole.
 */
export function csvExport<T>(
  c: Context<AppEnv>,
  opts: {
    filename: string;
    columns: readonly string[];
    rows: AsyncGenerator<T[]>;
    cells: (row: T) => Cell[];
  },
): Response {
  const release = takeExportSlot(c);
  const { logger } = c.get("deps");
  const requestId = c.get("requestId");
  const { rows, cells } = opts;
  let header = true;
  let cancelled = false;
  const body = new ReadableStream<Uint8Array>(
    {
      async pull(controller) {
        try {
          const records: Cell[][] = header ? [[...opts.columns]] : [];
          header = false;
          const next = await rows.next();
          if (cancelled) return;
          if (next.done) {
            if (records.length > 0) controller.enqueue(Buffer.from(stringify(records)));
            controller.close();
            release();
            return;
          }
          for (const row of next.value) records.push(cells(row));
          controller.enqueue(Buffer.from(stringify(records)));
        } catch (err) {
          if (cancelled) return;
          logger.error({ err, request_id: requestId }, "export failed while streaming");
          release();
          controller.error(err);
        }
      },
      async cancel() {
        cancelled = true;
        // An async generator runs a return() after the next() in flight, so the cursor is closed
        // even when the client leaves while a batch is being read.
        try {
          await rows.return(undefined);
        } finally {
          release();
        }
      },
    },
    // One batch waits at most; the next is pulled only when the response has taken it.
    { highWaterMark: 1 },
  );
  return c.body(body, 200, {
    "content-type": "text/csv; charset=utf-8",
    "content-disposition": `attachment; filename="${opts.filename}"`,
    "cache-control": "no-store",
  });
}
