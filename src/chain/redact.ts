/**
 * RPC providers put the API key in the URL (`https://host/v2/KEY`, `?apikey=KEY`, `user:KEY@host`),
 * and viem copies the URL into every transport error: its message, `metaMessages`, `url`, and the
 * stack (which starts with the message). So any text that may hold a URL is passed through here
 * before it is logged, stored (BullMQ keeps a failed job's message and stack in Redis, where the
 * queue dashboard shows them) or answered.
 *
 * The rule is deliberately blunt: keep the scheme, host and port (enough to tell which provider
 * failed) and drop credentials, path, query and fragment of every http(s)/ws(s) URL in the text.
 */
const URL_IN_TEXT = /\b(https?|wss?):\/\/([^\s"'`<>\\/?#@]*@)?([^\s"'`<>\\/?#@]+)([^\s"'`<>\\]*)/gi;

export const REDACTED = "[redacted]";

export function redactUrl(text: string): string {
  // Log lines without a URL (nearly all) cost one indexOf.
  if (!text.includes("://")) return text;
  return text.replace(
    URL_IN_TEXT,
    (_whole, scheme: string, userinfo: string | undefined, host: string, rest: string) => {
      const credentials = userinfo ? `${REDACTED}@` : "";
      const tail = rest === "" || rest === "/" ? rest : `/${REDACTED}`;
      return `${scheme}://${credentials}${host}${tail}`;
    },
  );
}

/**
 * The error as it may be shown: the same name and text with URLs redacted, its cause chain too.
 * Errors without a URL anywhere are returned as they are (BullMQ and callers may test their class).
 */
export function redactError(err: unknown, depth = 0): unknown {
  if (!(err instanceof Error)) return typeof err === "string" ? redactUrl(err) : err;
  const cause = depth < 5 && err.cause !== undefined ? redactError(err.cause, depth + 1) : err.cause;
  const message = redactUrl(err.message);
  const stack = err.stack === undefined ? undefined : redactUrl(err.stack);
  if (message === err.message && stack === err.stack && cause === err.cause && !hasUrlProps(err)) return err;
  const copy = new Error(message, cause === undefined ? undefined : { cause });
  copy.name = err.name;
  copy.stack = stack;
  // viem's structured fields (shortMessage, details, metaMessages, url, …), redacted; the request
  // body and headers are left out: they are not needed to understand a failure.
  for (const [key, value] of Object.entries(err)) {
    if (key === "cause" || key === "body" || key === "headers") continue;
    if (typeof value === "string") (copy as unknown as Record<string, unknown>)[key] = redactUrl(value);
    else if (Array.isArray(value))
      (copy as unknown as Record<string, unknown>)[key] = value.map((v) => (typeof v === "string" ? redactUrl(v) : v));
    else if (typeof value === "number" || typeof value === "boolean" || value === null)
      (copy as unknown as Record<string, unknown>)[key] = value;
  }
  return copy;
}

function hasUrlProps(err: Error): boolean {
  return Object.values(err).some(
    (v) =>
      (typeof v === "string" && redactUrl(v) !== v) ||
      (Array.isArray(v) && v.some((x) => typeof x === "string" && redactUrl(x) !== x)),
  );
}

/** A job processor whose failures are stored and logged without URLs (BullMQ keeps message and stack). */
export function withRedactedErrors<J, R>(processor: (job: J) => Promise<R>): (job: J) => Promise<R> {
  return async (job) => {
    try {
      return await processor(job);
    } catch (err) {
      throw redactError(err);
    }
  };
}
