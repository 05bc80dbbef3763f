/**
 * What REDIS_URL names: one Redis server, or the seed nodes of a Redis Cluster.
 *
 * - `redis://[user:password@]host:port[/db]` (or `rediss://` for TLS): one server.
 * - `redis-cluster://[user:password@]host:port,host:port,…` (or `rediss-cluster://` for TLS): a
 *   cluster, through any of these seed nodes (ioredis asks one of them for the slot map, then talks
 *   to every master it names). The credentials hold for every node.
 * - Several `redis://` URLs separated by commas: a cluster too, each URL one seed (their
 *   credentials and scheme must agree).
 *
 * A cluster has no databases: a path (`/1`) is refused rather than ignored.
 */
export type RedisTarget =
  | { kind: "single"; url: string }
  | {
      kind: "cluster";
      nodes: { host: string; port: number }[];
      username?: string;
      password?: string;
      tls: boolean;
    };

export class RedisUrlError extends Error {
  override name = "RedisUrlError";
}

const CLUSTER_SCHEME = /^(rediss?)-cluster:\/\/(.*)$/i;

/** Reads REDIS_URL; throws RedisUrlError with a message that says what is wrong and what is expected. */
export function parseRedisUrl(value: string): RedisTarget {
  const trimmed = value.trim();
  const cluster = CLUSTER_SCHEME.exec(trimmed);
  if (cluster) return parseClusterScheme(cluster[1]?.toLowerCase() === "rediss", cluster[2] ?? "");
  if (trimmed.includes(",")) return parseSeedList(trimmed);
  parseRedisScheme(trimmed);
  return { kind: "single", url: trimmed };
}

/** `user:password@host:port,host:port` after `redis-cluster://`. */
function parseClusterScheme(tls: boolean, rest: string): RedisTarget {
  const at = rest.lastIndexOf("@");
  const credentials = at >= 0 ? rest.slice(0, at) : undefined;
  const hosts = (at >= 0 ? rest.slice(at + 1) : rest).replace(/\/$/, "");
  if (hosts.includes("://")) {
    throw new RedisUrlError("after redis-cluster:// the seeds are host:port,host:port (no scheme of their own)");
  }
  if (hosts.includes("/") || hosts.includes("?")) {
    throw new RedisUrlError(
      "a cluster URL takes no path or options (a Redis Cluster has one database): write redis-cluster://host:port,host:port",
    );
  }
  const seeds = hosts.split(",").map((s) => s.trim());
  if (seeds.length === 0 || seeds.every((s) => s === "")) {
    throw new RedisUrlError(
      "redis-cluster:// needs at least one seed node, e.g. redis-cluster://127.0.0.1:7000,127.0.0.1:7001",
    );
  }
  const nodes = seeds.map(parseHostPort);
  let username: string | undefined;
  let password: string | undefined;
  if (credentials !== undefined) {
    const colon = credentials.indexOf(":");
    username = decodeURIComponent(colon >= 0 ? credentials.slice(0, colon) : credentials) || undefined;
    password = colon >= 0 ? decodeURIComponent(credentials.slice(colon + 1)) || undefined : undefined;
  }
  return { kind: "cluster", nodes, username, password, tls };
}

/** `redis://a:7000,redis://b:7001`: each a seed of one cluster. */
function parseSeedList(value: string): RedisTarget {
  const urls = value
    .split(",")
    .map((s) => s.trim())
    .map((s, i) => {
      if (s === "") throw new RedisUrlError(`seed ${i + 1} of the comma-separated list is empty`);
      return parseRedisScheme(s);
    });
  const [first] = urls;
  if (!first) throw new RedisUrlError("the comma-separated list names no seed");
  for (const u of urls) {
    if (u.protocol !== first.protocol || u.username !== first.username || u.password !== first.password) {
      throw new RedisUrlError("every seed of a comma-separated cluster list must have the same scheme and credentials");
    }
    if (u.pathname !== "" && u.pathname !== "/") {
      throw new RedisUrlError(`seed ${u.host} has a database path (${u.pathname}); a Redis Cluster has one database`);
    }
    if (!u.port)
      throw new RedisUrlError(`seed ${u.hostname} needs a port (host:port), e.g. redis://${u.hostname}:7000`);
  }
  return {
    kind: "cluster",
    nodes: urls.map((u) => ({ host: unbracket(u.hostname), port: Number(u.port) })),
    username: decodeURIComponent(first.username) || undefined,
    password: decodeURIComponent(first.password) || undefined,
    tls: first.protocol === "rediss:",
  };
}

function parseRedisScheme(value: string): URL {
  let url: URL;
  try {
    url = new URL(value);
  } catch {
    throw new RedisUrlError(
      // Not echoed: a value that is not a URL cannot be told apart from its password.
      "is not a URL; expected redis://host:port, or redis-cluster://host:port,host:port for a cluster",
    );
  }
  if (url.protocol !== "redis:" && url.protocol !== "rediss:") {
    throw new RedisUrlError(
      `scheme ${url.protocol} is not Redis; expected redis://, rediss://, redis-cluster:// or rediss-cluster://`,
    );
  }
  if (!url.hostname) throw new RedisUrlError("the URL names no host; expected redis://host:port");
  return url;
}

function parseHostPort(seed: string): { host: string; port: number } {
  const m = /^(\[[0-9a-fA-F:.]+\]|[^:[\]\s]+):(\d{1,5})$/.exec(seed);
  const port = m ? Number(m[2]) : Number.NaN;
  if (!m || port < 1 || port > 65535) {
    throw new RedisUrlError(
      `cluster seed "${seed}" must be host:port with a port from 1 to 65535 (e.g. 127.0.0.1:7000, [::1]:7000)`,
    );
  }
  return { host: unbracket(m[1] ?? ""), port };
}

const unbracket = (host: string) => host.replace(/^\[(.*)\]$/, "$1");

/** The value with any password masked, for messages and logs (cluster URLs are not WHATWG URLs). */
export function redactCredentials(value: string): string {
  return value.replace(/(\/\/[^/@,:]*):[^@/,]*@/g, "$1:***@");
}

/** How logs and messages name a target: the URL without its password, or the cluster's seeds. */
export function describeRedisTarget(target: RedisTarget): string {
  if (target.kind === "single") return redactCredentials(target.url);
  return `Redis Cluster (seeds ${target.nodes.map(nodeKey).join(", ")})`;
}

export const nodeKey = (n: { host: string; port: number }) =>
  `${n.host.includes(":") ? `[${n.host}]` : n.host}:${n.port}`;
