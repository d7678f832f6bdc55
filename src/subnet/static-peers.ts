/**
 * Static peers, as an operator writes them by hand:
 *   --peer 10.244.2.0/24=192.168.1.12        (port: the network's Backend.Port)
 *   --peer 10.244.3.0/24=192.168.1.13:8300
 * and the same lines in a peers file (`#` starts a comment).
 */
import { ConfigError } from '../errors';
import {
  formatPrefix, parseCidr, parseIpv4, prefixCovers, prefixesOverlap, type Ipv4Prefix,
} from '../net/ipv4';

/** One --peer: another host's subnet, underlay address and, when given, port. */
export interface StaticPeer {
  readonly subnet: Ipv4Prefix;
  readonly publicIp: number;
  /** undefined: the network's Backend.Port. */
  readonly port: number | undefined;
}

const EXAMPLE = 'expected CIDR=IP[:PORT], e.g. 10.244.2.0/24=192.168.1.12:8285';

export function parsePeerSpec(text: string, where = '--peer'): StaticPeer {
  const eq = text.indexOf('=');
  if (eq < 0) throw new ConfigError(where, text, `${where} "${text}" is malformed: ${EXAMPLE}`);
  const cidrText = text.slice(0, eq).trim();
  const target = text.slice(eq + 1).trim();
  const cidr = parseCidr(cidrText);
  if (cidr === undefined) {
    throw new ConfigError(where, text, `${where} "${text}": "${cidrText}" is not an IPv4 CIDR; ${EXAMPLE}`);
  }
  if (cidr.address !== cidr.prefix.network) {
    throw new ConfigError(where, text,
      `${where} "${text}": ${cidrText} has host bits set; did you mean ${formatPrefix(cidr.prefix)}?`);
  }
  const looksIpv6 = target.startsWith('[') ||
    ((target.match(/:/g) ?? []).length > 1 && parseIpv4(target.slice(0, target.indexOf(':'))) === undefined);
  if (looksIpv6) {
    throw new ConfigError(where, text, `${where} "${text}": "${target}" looks like an IPv6 address; weft's udp backend is IPv4-only`);
  }
  const colon = target.indexOf(':');
  const ipText = colon < 0 ? target : target.slice(0, colon);
  const publicIp = parseIpv4(ipText);
  if (publicIp === undefined) {
    throw new ConfigError(where, text, `${where} "${text}": "${ipText}" is not an IPv4 address; ${EXAMPLE}`);
  }
  let port: number | undefined;
  if (colon >= 0) {
    const portText = target.slice(colon + 1);
    const n = /^\d{1,5}$/.test(portText) ? Number(portText) : NaN;
    if (!(n >= 1 && n <= 65535)) {
      throw new ConfigError(where, text, `${where} "${text}": port "${portText}" must be a number from 1 to 65535`);
    }
    port = n;
  }
  return { subnet: cidr.prefix, publicIp, port };
}

/** Parses a peers file: one spec per line, blank lines and `#` comments ignored. */
export function parsePeersFile(text: string, path: string): StaticPeer[] {
  const peers: StaticPeer[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const line = (lines[i] as string).replace(/#.*/, '').trim();
    if (line === '') continue;
    peers.push(parsePeerSpec(line, `${path}:${i + 1}`));
  }
  return peers;
}

/**
 * Checks a peer set against this host: every peer subnet inside the cluster
 * network, none overlapping this host's own subnet, no subnet listed twice.
 * `sources[i]` names where peer i came from (a flag or file:line) for messages.
 */
export function checkPeers(network: Ipv4Prefix, own: Ipv4Prefix, peers: readonly { readonly subnet: Ipv4Prefix }[], sources: readonly string[]): void {
  const firstIndex = new Map<string, number>();
  peers.forEach((peer, i) => {
    const where = sources[i] ?? 'peer';
    const text = formatPrefix(peer.subnet);
    if (!prefixCovers(network, peer.subnet)) {
      throw new ConfigError(where, text, `${where}: peer subnet ${text} is outside the cluster network ${formatPrefix(network)}`);
    }
    if (prefixesOverlap(own, peer.subnet)) {
      throw new ConfigError(where, text, `${where}: peer subnet ${text} overlaps this host's own subnet ${formatPrefix(own)}`);
    }
    const first = firstIndex.get(text) ?? i;
    firstIndex.set(text, first);
    if (first !== i) {
      throw new ConfigError(where, text, `${where}: peer subnet ${text} is already given by ${sources[first] ?? 'another peer'}; list each subnet once`);
    }
  });
}
