import { request as httpRequest, type IncomingMessage } from "node:http";
import { request as httpsRequest } from "node:https";
import { isIP, type LookupFunction } from "node:net";

export type SendResult = { statusCode: number | null; error: string | null; excerpt: string | null; ok: boolean };

const EXCERPT_CHARS = 1_000;

/**
 * One POST of a webhook to `url`, connected to `address` (the one resolveTarget checked: the
 * URL's host name is still what TLS verifies and the Host header says). No redirect is followed;
 * the whole exchange has `timeoutMs`; only the first 1,000 characters of the answer are read.
 * Never throws: a failure is a result.
 */
export function sendWebhook(opts: {
  url: URL;
  address: string;
  headers: Record<string, string>;
  body: string;
  timeoutMs: number;
}): Promise<SendResult> {
  const { url, address } = opts;
  const family = isIP(address) === 6 ? 6 : 4;
  const pinned: LookupFunction = (_hostname, options, callback) => {
    if ((options as { all?: boolean }).all)
      (callback as (e: null, a: { address: string; family: number }[]) => void)(null, [{ address, family }]);
    else callback(null, address, family);
  };
  const request = opts.url.protocol === "https:" ? httpsRequest : httpRequest;
  return new Promise((resolve) => {
    let settled = false;
    const finish = (r: SendResult) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      resolve(r);
    };
    const req = request(
      opts.url,
      {
        method: "POST",
        lookup: pinned,
        agent: false,
        headers: { ...opts.headers, "content-length": Buffer.byteLength(opts.body).toString() },
      },
      (res: IncomingMessage) => {
        const statusCode = res.statusCode ?? 0;
        let excerpt = "";
        res.setEncoding("utf8");
        const done = () => {
          const ok = statusCode >= 200 && statusCode < 300;
          const error = ok
            ? null
            : statusCode >= 300 && statusCode < 400
              ? `redirect (${statusCode}) not followed`
              : `answered ${statusCode}`;
          // PostgreSQL text holds no NUL (22021): a receiver's NUL would make the attempt
          // unrecordable, and the event be sent again at every lapse of its claim.
          finish({ statusCode, error, excerpt: excerpt.replaceAll("\u0000", "\ufffd") || null, ok });
          res.destroy();
        };
        // The rest of an answer is not read: a receiver that streams without end (or sends
        // gigabytes) costs us 1,000 characters, not the whole timeout's worth of traffic.
        res.on("data", (chunk: string) => {
          if (excerpt.length < EXCERPT_CHARS) excerpt += chunk.slice(0, EXCERPT_CHARS - excerpt.length);
          if (excerpt.length >= EXCERPT_CHARS) done();
        });
        res.on("end", done);
        res.on("error", done);
        res.on("close", done);
      },
    );
    const timer = setTimeout(() => {
      finish({ statusCode: null, error: `no answer within ${opts.timeoutMs} ms`, excerpt: null, ok: false });
      req.destroy();
    }, opts.timeoutMs);
    req.on("error", (err) => finish({ statusCode: null, error: err.message, excerpt: null, ok: false }));
    req.end(opts.body);
  });
}
