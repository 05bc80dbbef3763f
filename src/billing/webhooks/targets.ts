import { lookup } from "node:dns/promises";
import { BlockList, isIP } from "node:net";
import { BillingError } from "../../errors.js";

/**
 * Where webhooks may go. A customer names the URL, and our workers send to it from inside our
 * network: without these rules a URL could reach our own services or a cloud metadata endpoint
 * (SSRF). Two checks: the URL when it is saved (scheme, credentials, a literal address or a
 * localhost name: a clear 400), and the addresses its host resolves to before every attempt (a
 * name can point anywhere, and can change); the connection then goes to the address that was
 * checked, never to a second lookup (no DNS rebinding), and redirects are never followed.
 */

/** Resolves a host name to its addresses (injected in tests; DNS otherwise). */
export type Resolver = (hostname: string) => Promise<string[]>;
export const dnsResolver: Resolver = async (hostname) =>
  (await lookup(hostname, { all: true, verbatim: true })).map((a) => a.address);

export type TargetPolicy = { allowLocalhost: boolean };

// Everything that is not the public internet: this host, private and shared networks, link-local
// (169.254.169.254 and fd00:ec2::254 are cloud metadata), multicast, reserved and documentation ranges.
const PRIVATE = new BlockList();
for (const [net, bits] of [
  ["0.0.0.0", 8],
  ["10.0.0.0", 8],
  ["100.64.0.0", 10],
  ["127.0.0.0", 8],
  ["169.254.0.0", 16],
  ["172.16.0.0", 12],
  ["192.0.0.0", 24],
  ["192.0.2.0", 24],
  ["192.88.99.0", 24],
  ["192.168.0.0", 16],
  ["198.18.0.0", 15],
  ["198.51.100.0", 24],
  ["203.0.113.0", 24],
  ["224.0.0.0", 4],
  ["240.0.0.0", 4],
] as const)
  PRIVATE.addSubnet(net, bits, "ipv4");
for (const [net, bits] of [
  // ::/96 holds :: and ::1, and the deprecated IPv4-compatible form (::7f00:1 is [::127.0.0.1]).
  ["::", 96],
  // SIIT's IPv4-translated form (::ffff:0:a.b.c.d) and 6to4 (2002:AABB:CCDD::, an IPv4 address
  // inside): both can carry any IPv4 address, a private one included.
  ["::ffff:0:0:0", 96],
  ["2002::", 16],
  ["64:ff9b::", 96],
  ["64:ff9b:1::", 48],
  ["100::", 64],
  ["2001::", 23],
  ["2001:db8::", 32],
  ["fc00::", 7],
  ["fe80::", 10],
  ["fec0::", 10],
  ["ff00::", 8],
] as const)
  PRIVATE.addSubnet(net, bits, "ipv6");

const LOOPBACK = new BlockList();
LOOPBACK.addSubnet("127.0.0.0", 8, "ipv4");
LOOPBACK.addAddress("::1", "ipv6");

/** An IPv4 address carried in IPv6 (::ffff:a.b.c.d, ::a.b.c.d) is judged as that IPv4 address. */
function normalize(address: string): { address: string; family: "ipv4" | "ipv6" } {
  const bare = address.replace(/^\[|\]$/g, "");
  const mapped = /^::(?:ffff:)?(\d+\.\d+\.\d+\.\d+)$/i.exec(bare)?.[1];
  if (mapped) return { address: mapped, family: "ipv4" };
  const hexMapped = /^::ffff:([0-9a-f]{1,4}):([0-9a-f]{1,4})$/i.exec(bare);
  if (hexMapped?.[1] && hexMapped[2]) {
    const hi = Number.parseInt(hexMapped[1], 16);
    const lo = Number.parseInt(hexMapped[2], 16);
    return { address: `${hi >> 8}.${hi & 255}.${lo >> 8}.${lo & 255}`, family: "ipv4" };
  }
  return { address: bare, family: isIP(bare) === 4 ? "ipv4" : "ipv6" };
}

export function isLoopbackAddress(address: string): boolean {
  const a = normalize(address);
  return LOOPBACK.check(a.address, a.family);
}

/** Why an address may not be a webhook's target, or null when it may. */
export function refusedAddress(address: string, policy: TargetPolicy): string | null {
  const a = normalize(address);
  if (isIP(a.address) === 0) return `${address} is not an IP address`;
  if (policy.allowLocalhost && LOOPBACK.check(a.address, a.family)) return null;
  if (PRIVATE.check(a.address, a.family))
    return `${address} is a private, loopback, link-local or reserved address; webhooks go to the public internet only`;
  return null;
}

// A trailing dot names the same host (`localhost.` is localhost).
const isLocalhostName = (host: string) => {
  const name = host.replace(/\.+$/, "");
  return name === "localhost" || name.endsWith(".localhost");
};

function invalidUrl(message: string): BillingError {
  return new BillingError("invalid_request", `url: ${message}`, { details: { param: "url" } });
}

/**
 * The checks a URL passes to be saved as an endpoint (a 400 naming `url` otherwise). Its host's
 * addresses are checked again before every delivery (resolveTarget).
 */
export function checkWebhookUrl(text: string, policy: TargetPolicy): URL {
  let url: URL;
  try {
    url = new URL(text);
  } catch {
    throw invalidUrl("must be an absolute URL, e.g. https://example.com/hooks/hanzo");
  }
  const host = url.hostname.replace(/^\[|\]$/g, "").toLowerCase();
  const loopback = isLocalhostName(host) || (isIP(host) !== 0 && isLoopbackAddress(host));
  if (url.protocol !== "https:" && !(url.protocol === "http:" && policy.allowLocalhost && loopback))
    throw invalidUrl(
      policy.allowLocalhost
        ? "must be https (http only to localhost in development)"
        : `must be https (${url.protocol.replace(":", "")} is not accepted)`,
    );
  if (url.username || url.password) throw invalidUrl("must not contain a user name or password");
  if (url.hash) throw invalidUrl("must not have a #fragment");
  if (isLocalhostName(host) && !policy.allowLocalhost)
    throw invalidUrl(`${host} is this machine; webhooks go to the public internet only`);
  if (isIP(host) !== 0) {
    const refused = refusedAddress(host, policy);
    if (refused) throw invalidUrl(refused);
  }
  return url;
}

/**
 * The address a delivery connects to: the URL's host resolved once, every address it has
 * checked (one private address refuses the target: which one a client would pick is not ours to
 * guess). Throws TargetRefused.
 */
export async function resolveTarget(url: URL, policy: TargetPolicy, resolve: Resolver): Promise<string> {
  const host = url.hostname.replace(/^\[|\]$/g, "").toLowerCase();
  if (isLocalhostName(host) && !policy.allowLocalhost) throw new TargetRefused(`${host} is this machine`);
  let addresses: string[];
  if (isIP(host) !== 0) addresses = [host];
  else {
    try {
      addresses = isLocalhostName(host) ? ["127.0.0.1"] : await resolve(host);
    } catch (err) {
      throw new TargetRefused(`${host} does not resolve (${(err as Error).message})`);
    }
  }
  if (addresses.length === 0) throw new TargetRefused(`${host} has no address`);
  for (const address of addresses) {
    const refused = refusedAddress(address, policy);
    if (refused) throw new TargetRefused(`${host} resolves to ${refused}`);
  }
  return addresses[0] as string;
}

export class TargetRefused extends Error {
  override name = "TargetRefused";
}
