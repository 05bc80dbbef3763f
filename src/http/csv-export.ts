import type { Context } from "hono";
import { BillingError } from "../errors.js";
import type { AppDeps, AppEnv } from "./context.js";
import { type Cell, csvRecord } from "./csv-record.js";

export type { Cell };

/**
 * A cell whose text a customer (or anyone but us) chose: project names, descriptions, metadata.
 * A spreadsheet runs a cell that starts with `=`, `+`, `-` or `@` (or a tab or carriage return,
 * which some strip first) as a formula, so such a cell is prefixed with a single quote, as OWASP's
 * CSV injection advice says; csvRecord then quotes whatever needs quoting. Numbers and amounts
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
 * About how much text goes into one chunk of the response (whole records, so a character is never
 * cut in two). Small on purpose: a chunk the socket has not yet written when V8 collects its young
 * generation is moved to the old one, and its bytes (outside the JS heap) stay allocated until the
 * next full GC; 16 K characters pins a little, where a chunk per 1,000-row batch (~100 KB) pinned
 * tens of MB over a million rows.
 */
const CHUNK_CHARS = 16_384;

/**
 * Streams rows as a CSV attachment (`text/csv; charset=utf-8`): a header line of `columns`, then
 * each batch `rows` yields, turned into cells by `cells` and into CSV text by csvRecord, one
 * batch at a time (in chunks of about CHUNK_CHARS). Pull-based: the next batch is read from `rows` (a database cursor) only when
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
  const headers = {
    "content-type": "text/csv; charset=utf-8",
    "content-disposition": `attachment; filename="${opts.filename}"`,
    "cache-control": "no-store",
  };
  // A HEAD gets the GET's headers and no body. The router answers a HEAD with the GET's handler
  // and drops the body without cancelling it: a stream made here would hold its export slot, and
  // its cursor's connection, for good. The rows were never read, so closing them opens nothing.
  if (c.req.method === "HEAD") {
    void opts.rows.return(undefined);
    return c.body(null, 200, headers);
  }
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
          let text = header ? csvRecord(opts.columns) : "";
          header = false;
          const next = await rows.next();
          if (cancelled) return;
          if (next.done) {
            if (text) controller.enqueue(Buffer.from(text));
            controller.close();
            release();
            return;
          }
          for (const row of next.value) {
            text += csvRecord(cells(row));
            if (text.length >= CHUNK_CHARS) {
              controller.enqueue(Buffer.from(text));
              text = "";
            }
          }
          next.value.length = 0; // let the rows die young (see cursorBatches)
          if (text) controller.enqueue(Buffer.from(text));
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
  return c.body(body, 200, headers);
}
