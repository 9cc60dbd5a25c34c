/**
 * Which upstream addresses a forwarded call may reach. An `atproto-proxy` header lets any
 * caller pick the service, through a DID document anyone can write, so without a check a
 * caller could make this server send requests into its own network (cloud metadata, admin
 * ports, databases). In production only https to public unicast addresses is allowed; in
 * development (PDS_DEV_MODE, or a localhost hostname) loopback and plain http are too, since
 * that is where local AppViews and test services live.
 *
 * The check runs twice: on the URL's host when it is an IP literal, and on every address DNS
 * returns for a name (through the `lookup` given to the socket), so a name that resolves to a
 * private address is refused at connect time, not trusted on its spelling.
 */
import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP, type LookupFunction } from 'node:net';

const BLOCKED = new BlockList();
for (const [net, prefix] of [
  ['0.0.0.0', 8], // "this network"
  ['10.0.0.0', 8], // private
  ['100.64.0.0', 10], // carrier-grade NAT
  ['169.254.0.0', 16], // link-local (cloud metadata lives here)
  ['172.16.0.0', 12], // private
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // documentation
  ['192.168.0.0', 16], // private
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // documentation
  ['203.0.113.0', 24], // documentation
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
] as const) {
  BLOCKED.addSubnet(net, prefix, 'ipv4');
}
for (const [net, prefix] of [
  ['::', 128], // unspecified
  ['64:ff9b::', 96], // NAT64 (would reach IPv4 space indirectly)
  ['100::', 64], // discard
  ['2001:db8::', 32], // documentation
  ['fc00::', 7], // unique local
  ['fe80::', 10], // link-local
  ['ff00::', 8], // multicast
] as const) {
  BLOCKED.addSubnet(net, prefix, 'ipv6');
}
const LOOPBACK = new BlockList();
LOOPBACK.addSubnet('127.0.0.0', 8, 'ipv4');
LOOPBACK.addAddress('::1', 'ipv6');

export class ForbiddenUpstream extends Error {}

export interface AddressPolicy {
  /** Loopback addresses and plain http are allowed (development only). */
  allowLoopback: boolean;
}

/** IPv4-mapped IPv6 (::ffff:a.b.c.d) is judged as the IPv4 address it carries. */
function unmapped(address: string): { address: string; family: 'ipv4' | 'ipv6' } {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(address);
  if (mapped) return { address: mapped[1]!, family: 'ipv4' };
  return { address, family: isIP(address) === 6 ? 'ipv6' : 'ipv4' };
}

/** Why `address` (an IP) may not be reached, or undefined when it may. */
export function addressProblem(address: string, policy: AddressPolicy): string | undefined {
  const ip = unmapped(address);
  if (LOOPBACK.check(ip.address, ip.family)) {
    return policy.allowLoopback ? undefined : `${address} is a loopback address`;
  }
  if (BLOCKED.check(ip.address, ip.family)) return `${address} is a private, link-local or reserved address`;
  return undefined;
}

/** Checks a URL before connecting: scheme, and the host when it is an IP literal or localhost. */
export function urlProblem(url: URL, policy: AddressPolicy): string | undefined {
  if (url.protocol !== 'https:' && !(url.protocol === 'http:' && policy.allowLoopback)) {
    return `${url.protocol.replace(':', '')} is not allowed (https only)`;
  }
  const host = url.hostname.replace(/^\[(.*)\]$/, '$1');
  if (isIP(host)) return addressProblem(host, policy);
  if (host === 'localhost' || host.endsWith('.localhost')) {
    return policy.allowLoopback ? undefined : `${host} is a loopback name`;
  }
  return undefined;
}

/** A socket `lookup` that fails when any address a name resolves to is not allowed. */
export function guardedLookup(policy: AddressPolicy, base: typeof dnsLookup = dnsLookup): LookupFunction {
  return (hostname, options, callback) => {
    base(hostname, { ...options, all: true }, (err, addresses: LookupAddress[]) => {
      if (err) return callback(err, '', 0);
      for (const a of addresses) {
        const problem = addressProblem(a.address, policy);
        if (problem) return callback(new ForbiddenUpstream(`${hostname} resolves to ${problem}`), '', 0);
      }
      if (options.all) return (callback as unknown as (e: null, all: LookupAddress[]) => void)(null, addresses);
      const first = addresses[0];
      if (!first) return callback(new Error(`${hostname} has no address`), '', 0);
      callback(null, first.address, first.family);
    });
  };
}
