import type postgres from "postgres";

/** How many rows each round trip of an export's cursor fetches: small enough to hold, big enough to stream fast. */
export const EXPORT_BATCH_ROWS = 1000;

/**
 * Reads `query` through a cursor, EXPORT_BATCH_ROWS rows a round trip, and yields each batch as
 * `map` turns its rows; ending the iteration early closes the cursor and frees the connection.
 *
 * Each batch is emptied (`length = 0`) as soon as it has been used: postgres.js' batch array and
 * ours. They are referenced from long-lived objects (the connection's current result, this
 * generator's suspended frame), which V8 has moved to its old generation; a young object that an
 * old one points to survives every young-generation GC, however dead that old object is, until a
 * full GC. Left alone, nearly every row of an export was moved to the old generation that way
 * (~450 bytes a row), and the heap grew by hundreds of MB over a million rows before a full GC
 * let go of them. Emptied, the rows die young and the API's memory stays flat
 * (test/exports/million-rows.test.ts, bench/RESULTS-exports.md).
 */
export async function* cursorBatches<R extends postgres.Row, T>(
  query: postgres.PendingQuery<R[]>,
  map: (row: R) => T,
): AsyncGenerator<T[]> {
  for await (const records of query.cursor(EXPORT_BATCH_ROWS)) {
    const batch = records.map(map);
    records.length = 0;
    yield batch;
    batch.length = 0; // the consumer is done with it: it asked for the next
  }
}
