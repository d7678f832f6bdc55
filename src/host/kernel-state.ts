/**
 * Reading the kernel's routing state back (iproute2's JSON output), so that
 * the kernel backends program differences only, adopt what a previous run
 * left, and never touch what someone else made.
 *
 * Every route weft adds carries routing protocol WEFT_ROUTE_PROTO; `ip -N`
 * prints protocols and types as numbers, whatever /etc/iproute2/rt_protos says.
 */
import { CommandError } from '../errors';
import { ip, run, runResult } from '../sys/exec';
import { parseCidr, parseIpv4, formatPrefix, type Ipv4Prefix } from '../net/ipv4';

/** The routing protocol number on weft's routes (`ip route show proto 87`); unassigned in iproute2's rt_protos. */
export const WEFT_ROUTE_PROTO = 87;
const RTN_UNICAST = 1;
const RTN_BLACKHOLE = 6;

export interface KernelRoute {
  readonly dst: Ipv4Prefix;
  /** "unicast", "blackhole", or the kernel's number for other types. */
  readonly type: string;
  readonly gateway: number | undefined;
  readonly dev: string | undefined;
  readonly onlink: boolean;
  /** Routing protocol number (WEFT_ROUTE_PROTO on weft's). */
  readonly proto: number;
  readonly metric: number;
}

export interface KernelNeighbour {
  readonly ip: number;
  readonly mac: string;
}

export interface KernelFdbEntry {
  readonly mac: string;
  readonly dst: number;
}

export interface VxlanLinkInfo {
  readonly vni: number;
  readonly local: number | undefined;
  /** Underlay device name. */
  readonly dev: string | undefined;
  readonly port: number;
  readonly learning: boolean;
  readonly gbp: boolean;
}

export interface LinkDetails {
  readonly name: string;
  readonly index: number;
  /** linkinfo's info_kind ("vxlan", "veth", "tun", ...); "" for none. */
  readonly kind: string;
  readonly mac: string;
  readonly mtu: number;
  readonly up: boolean;
  readonly vxlan: VxlanLinkInfo | undefined;
  /** IPv4 addresses as "a.b.c.d/len" (from `ip -d -j addr`; empty from `ip -d -j link`). */
  readonly addresses: readonly string[];
}

interface IpRouteJson {
  type?: string;
  dst?: string;
  gateway?: string;
  dev?: string;
  protocol?: string;
  metric?: number;
  flags?: string[];
}

function parseJsonArray<T>(text: string): T[] {
  const trimmed = text.trim();
  return trimmed === '' ? [] : (JSON.parse(trimmed) as T[]);
}

function typeName(n: string | undefined): string {
  const v = Number(n ?? RTN_UNICAST);
  return v === RTN_UNICAST ? 'unicast' : v === RTN_BLACKHOLE ? 'blackhole' : String(n);
}

/** Turns `ip -N -j -d route` output into routes; entries it cannot read (IPv6, "default") are skipped. Pure. */
export function parseRoutes(text: string): KernelRoute[] {
  const out: KernelRoute[] = [];
  for (const r of parseJsonArray<IpRouteJson>(text)) {
    if (r.dst === undefined) continue;
    const cidr = parseCidr(r.dst.includes('/') ? r.dst : `${r.dst}/32`);
    if (cidr === undefined) continue;
    out.push({
      dst: cidr.prefix,
      type: typeName(r.type),
      gateway: r.gateway === undefined ? undefined : parseIpv4(r.gateway),
      dev: r.dev,
      onlink: (r.flags ?? []).includes('onlink'),
      proto: Number(r.protocol ?? 0),
      metric: r.metric ?? 0,
    });
  }
  return out;
}

/** Routes of the main table whose destination lies inside `within` (any protocol). */
export async function listRoutesWithin(within: Ipv4Prefix): Promise<KernelRoute[]> {
  return parseRoutes(await ip(['-N', '-j', '-d', '-4', 'route', 'show', 'table', 'main', 'root', formatPrefix(within)]));
}

/** Every route of the main table weft added (protocol WEFT_ROUTE_PROTO). */
export async function listWeftRoutes(): Promise<KernelRoute[]> {
  return parseRoutes(await ip(['-N', '-j', '-d', '-4', 'route', 'show', 'table', 'main', 'proto', String(WEFT_ROUTE_PROTO)]));
}

/** Permanent IPv4 neighbour entries on a device. Pure parser first. */
export function parseNeighbours(text: string): KernelNeighbour[] {
  const out: KernelNeighbour[] = [];
  for (const n of parseJsonArray<{ dst?: string; lladdr?: string; state?: string[] }>(text)) {
    const addr = n.dst === undefined ? undefined : parseIpv4(n.dst);
    if (addr === undefined || n.lladdr === undefined || !(n.state ?? []).includes('PERMANENT')) continue;
    out.push({ ip: addr, mac: n.lladdr.toLowerCase() });
  }
  return out;
}

export async function listPermanentNeighbours(dev: string): Promise<KernelNeighbour[]> {
  return parseNeighbours(await ip(['-j', '-4', 'neigh', 'show', 'dev', dev, 'nud', 'permanent']));
}

/** Permanent FDB entries with an IPv4 remote on a vxlan device. Pure parser first. */
export function parseFdb(text: string): KernelFdbEntry[] {
  const out: KernelFdbEntry[] = [];
  for (const e of parseJsonArray<{ mac?: string; dst?: string; state?: string; flags?: string[] }>(text)) {
    const dst = e.dst === undefined ? undefined : parseIpv4(e.dst);
    if (dst === undefined || e.mac === undefined || e.state !== 'permanent') continue;
    out.push({ mac: e.mac.toLowerCase(), dst });
  }
  return out;
}

export async function listPermanentFdb(dev: string): Promise<KernelFdbEntry[]> {
  return parseFdb(await run('bridge', ['-j', 'fdb', 'show', 'dev', dev]));
}

interface IpLinkJson {
  ifindex?: number;
  ifname?: string;
  address?: string;
  mtu?: number;
  flags?: string[];
  linkinfo?: { info_kind?: string; info_data?: Record<string, unknown> };
  addr_info?: Array<{ family?: string; local?: string; prefixlen?: number }>;
}

/** `ip -d -j addr show` (or `link show`) of one device. Pure parser first. */
export function parseLinkDetails(text: string): LinkDetails | undefined {
  const l = parseJsonArray<IpLinkJson>(text)[0];
  if (l === undefined || l.ifname === undefined) return undefined;
  const kind = l.linkinfo?.info_kind ?? '';
  const d = l.linkinfo?.info_data ?? {};
  const vxlan: VxlanLinkInfo | undefined = kind !== 'vxlan' ? undefined : {
    vni: Number(d['id']),
    local: typeof d['local'] === 'string' ? parseIpv4(d['local']) : undefined,
    dev: typeof d['link'] === 'string' ? d['link'] : undefined,
    port: Number(d['port'] ?? 0),
    learning: d['learning'] === true,
    gbp: d['gbp'] === true,
  };
  return {
    name: l.ifname,
    index: l.ifindex ?? 0,
    kind,
    mac: (l.address ?? '').toLowerCase(),
    mtu: l.mtu ?? 0,
    up: (l.flags ?? []).includes('UP'),
    vxlan,
    addresses: (l.addr_info ?? []).filter((a) => a.family === 'inet' && a.local !== undefined).map((a) => `${a.local}/${a.prefixlen ?? 32}`),
  };
}

/** The device's details, or undefined when there is no such device. */
export async function linkDetails(name: string): Promise<LinkDetails | undefined> {
  const r = await runResult('ip', ['-d', '-j', 'addr', 'show', 'dev', name]);
  if (r.code !== 0) {
    if (/does not exist|Cannot find device/i.test(r.stderr)) return undefined;
    throw new CommandError(`ip -d -j addr show dev ${name}`, r.code, r.stderr, 'weft needs iproute2 (apt-get install iproute2)');
  }
  return parseLinkDetails(r.stdout);
}

/** The IPv4 prefixes directly connected through a device (its addresses with their lengths). */
export async function connectedPrefixes(dev: string): Promise<Ipv4Prefix[]> {
  const json = parseJsonArray<{ addr_info?: Array<{ family?: string; local?: string; prefixlen?: number }> }>(
    await ip(['-j', '-4', 'addr', 'show', 'dev', dev]));
  const out: Ipv4Prefix[] = [];
  for (const a of json[0]?.addr_info ?? []) {
    if (a.family !== 'inet' || a.local === undefined || a.prefixlen === undefined) continue;
    const cidr = parseCidr(`${a.local}/${a.prefixlen}`);
    if (cidr !== undefined) out.push(cidr.prefix);
  }
  return out;
}
