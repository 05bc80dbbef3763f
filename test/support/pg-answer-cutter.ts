import { type AddressInfo, connect, createServer, type Socket } from "node:net";

/** The start of PostgreSQL's ReadyForQuery message: 'Z', then its length, 5. */
const READY_FOR_QUERY = Buffer.from([0x5a, 0, 0, 0, 5]);

/**
 * A TCP proxy in front of PostgreSQL. Armed with a marker, it takes the next query whose bytes
 * contain it and either
 * - `answered`: lets it run and commit, then cuts that connection as the answer completes
 *   (ReadyForQuery) instead of passing the answer on; or
 * - `late`: cuts the API's side of that connection at once, and holds the query back until
 *   `release()`, then sends it to PostgreSQL on the same session (a query stuck in the network
 *   that arrives after its sender gave up); `lateAnswer` is PostgreSQL's answer to it.
 * Every other byte goes through as it is.
 */
export async function startAnswerCutter(port: number) {
  let armed: { marker: Buffer; mode: "answered" | "late" } | undefined;
  let cuts = 0;
  let release: () => void = () => {};
  const released = new Promise<void>((resolve) => {
    release = resolve;
  });
  let answerLate: (answer: string) => void = () => {};
  const lateAnswer = new Promise<string>((resolve) => {
    answerLate = resolve;
  });
  const sockets = new Set<Socket>();
  const server = createServer((client) => {
    const upstream = connect(port, "127.0.0.1");
    sockets.add(client).add(upstream);
    let cutThis: "answered" | "late" | undefined;
    let answer = Buffer.alloc(0);
    const close = () => {
      client.destroy();
      if (cutThis !== "late") upstream.destroy();
    };
    client.on("data", (chunk: Buffer) => {
      if (armed && chunk.includes(armed.marker)) {
        cutThis = armed.mode;
        armed = undefined;
        if (cutThis === "late") {
          cuts++;
          client.destroy();
          void released.then(() => upstream.write(chunk));
          return;
        }
      }
      upstream.write(chunk);
    });
    upstream.on("data", (chunk: Buffer) => {
      if (!cutThis) return void client.write(chunk);
      answer = Buffer.concat([answer, chunk]);
      if (!answer.includes(READY_FOR_QUERY)) return;
      if (cutThis === "late") {
        answerLate(answer.toString("latin1"));
        upstream.destroy();
      } else {
        cuts++;
        close();
      }
    });
    for (const s of [client, upstream]) {
      s.on("error", close);
      s.on("close", close);
    }
  });
  await new Promise<void>((resolve) => server.listen(0, "127.0.0.1", resolve));
  return {
    port: (server.address() as AddressInfo).port,
    arm: (text: string, mode: "answered" | "late" = "answered") => {
      armed = { marker: Buffer.from(text), mode };
    },
    cuts: () => cuts,
    release,
    lateAnswer,
    async close() {
      release();
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
}
