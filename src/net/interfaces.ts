/**
 * Picking the underlay interface the way flanneld does (main.go,
 * pkg/ipmatch): `--iface` (a name or an address; repeatable, first match
 * wins); when none matches, `--iface-regex` (repeatable; addresses are tried
 * before names, and an address that matched is the one used); then
 * `--iface-can-reach` (the interface `ip route get` picks for that address);
 * with none of them, the interface of the default route. The public IP is
 * `--public-ip` or the chosen address.
 */
import { readFile } from 'node:fs/promises';
import { ConfigError } from '../errors';
import { ip } from '../sys/exec';
import { formatIpv4, parseIpv4 } from './ipv4';

export interface Underlay {
  /** Interface name, e.g. eth0. */
  readonly name: string;
  /** The interface's IPv4 address. */
  readonly ifaceAddress: number;
  /** Address peers send to (--public-ip, else ifaceAddress). */
  readonly publicIp: number;
  /** The interface's MTU. */
  readonly mtu: number;
}

export interface UnderlayRequest {
  readonly iface: readonly string[];
  readonly ifaceRegex: readonly string[];
  readonly ifaceCanReach?: string | undefined;
  readonly publicIp?: string | undefined;
  /** Says which --iface did not match before falling through to the next flag. */
  readonly log?: { info(obj: object, msg: string): void };
}

export interface IfaceInfo {
  readonly name: string;
  readonly addresses: readonly number[];
}

interface IpAddrJson {
  ifname?: string;
  addr_info?: Array<{ family?: string; local?: string }>;
}

/**
 * Every interface with its IPv4 addresses, from `ip -j addr` (os.networkInterfaces
 * hides interfaces whose carrier is not up yet, which is common at boot).
 */
async function listInterfaces(): Promise<IfaceInfo[]> {
  const json = await ip(['-j', 'addr', 'show']);
  const links = JSON.parse(json === '' ? '[]' : json) as IpAddrJson[];
  return links
    .filter((l): l is IpAddrJson & { ifname: string } => typeof l.ifname === 'string')
    .map((l) => ({
      name: l.ifname,
      addresses: (l.addr_info ?? [])
        .filter((a) => a.family === 'inet' && typeof a.local === 'string')
        .map((a) => parseIpv4(a.local as string))
        .filter((a): a is number => a !== undefined),
    }));
}

const IFNAME = /^[A-Za-z0-9_.-]{1,15}$/;

/** Linux interface names: 1 to 15 of letters, digits, '.', '-', '_' (and not "." or ".."). ConfigError naming `flag`. */
export function validateInterfaceName(name: string, flag: string): void {
  if (!IFNAME.test(name) || name === '.' || name === '..') {
    throw new ConfigError(flag, name,
      `${flag} "${name}" is not a valid interface name: use 1 to 15 characters from letters, digits, '.', '-' and '_'`);
  }
}

async function readMtu(name: string): Promise<number> {
  const text = await readFile(`/sys/class/net/${name}/mtu`, 'utf8');
  const mtu = Number(text.trim());
  if (!Number.isInteger(mtu) || mtu <= 0) throw new ConfigError('--iface', name, `cannot read the MTU of ${name}`);
  return mtu;
}

async function defaultRouteInterface(): Promise<string> {
  const json = await ip(['-j', '-4', 'route', 'show', 'default']);
  const routes = JSON.parse(json === '' ? '[]' : json) as Array<{ dev?: string }>;
  const dev = routes.find((r) => typeof r.dev === 'string')?.dev;
  if (dev === undefined) {
    throw new ConfigError('--iface', undefined,
      'this host has no IPv4 default route, so weft cannot pick the underlay interface: pass --iface NAME (or an address)');
  }
  return dev;
}

function compileRegex(text: string): RegExp {
  try {
    return new RegExp(text);
  } catch (err) {
    throw new ConfigError('--iface-regex', text, `--iface-regex "${text}" is not a valid regular expression: ${(err as Error).message}`);
  }
}

/**
 * The first interface (in `interfaces` order) with an address matching `re`
 * (that address is used), else the first whose name matches (its first
 * address). Pure.
 */
export function matchIfaceRegex(interfaces: readonly IfaceInfo[], re: RegExp): { name: string; address: number } | undefined {
  for (const i of interfaces) {
    const address = i.addresses.find((a) => re.test(formatIpv4(a)));
    if (address !== undefined) return { name: i.name, address };
  }
  const byName = interfaces.find((i) => i.addresses.length > 0 && re.test(i.name));
  return byName === undefined ? undefined : { name: byName.name, address: byName.addresses[0] as number };
}

/** The interface and source address the kernel would use to reach `text`. */
async function ifaceToReach(text: string, interfaces: readonly IfaceInfo[]): Promise<{ name: string; address: number }> {
  const target = parseIpv4(text);
  if (target === undefined) {
    throw new ConfigError('--iface-can-reach', text, `--iface-can-reach "${text}" is not an IPv4 address (example: 192.168.1.1)`);
  }
  const json = await ip(['-j', '-4', 'route', 'get', text]).catch(() => '[]');
  const r = (JSON.parse(json === '' ? '[]' : json) as Array<{ dev?: string; prefsrc?: string }>)[0];
  const name = r?.dev;
  const address = r?.prefsrc === undefined ? interfaces.find((i) => i.name === name)?.addresses[0] : parseIpv4(r.prefsrc);
  if (name === undefined || address === undefined) {
    throw new ConfigError('--iface-can-reach', text, `no route from this host reaches ${text} (--iface-can-reach); check the routing table or use --iface`);
  }
  return { name, address };
}

export async function resolveUnderlay(req: UnderlayRequest): Promise<Underlay> {
  const interfaces = await listInterfaces();
  let chosen: { name: string; address: number } | undefined;
  const tried: string[] = [];

  for (const wanted of req.iface) {
    const asAddress = parseIpv4(wanted);
    const match = interfaces.find((i) =>
      asAddress === undefined ? i.name === wanted : i.addresses.includes(asAddress));
    if (match !== undefined) {
      const address = asAddress ?? match.addresses[0];
      if (address === undefined) {
        throw new ConfigError('--iface', wanted, `interface ${wanted} has no IPv4 address; give it one or choose another --iface`);
      }
      chosen = { name: match.name, address };
      break;
    }
    req.log?.info({ iface: wanted }, `no interface matches --iface ${wanted}`);
  }
  if (chosen === undefined && req.iface.length > 0) tried.push(`--iface ${req.iface.join(', ')}`);
  if (chosen === undefined && req.ifaceRegex.length > 0) {
    for (const text of req.ifaceRegex) {
      chosen = matchIfaceRegex(interfaces, compileRegex(text));
      if (chosen !== undefined) break;
      req.log?.info({ ifaceRegex: text }, `no interface matches --iface-regex ${text}`);
    }
    if (chosen === undefined) tried.push(`--iface-regex ${req.ifaceRegex.join(', ')}`);
  }
  if (chosen === undefined && req.ifaceCanReach !== undefined && req.ifaceCanReach !== '') {
    chosen = await ifaceToReach(req.ifaceCanReach, interfaces);
  }
  if (chosen === undefined && tried.length > 0) {
    const flag = req.iface.length > 0 ? '--iface' : '--iface-regex';
    throw new ConfigError(flag, [...req.iface, ...req.ifaceRegex].join(','),
      `no interface with an IPv4 address matches ${tried.join(' or ')}; interfaces here: ` +
      interfaces.map((i) => `${i.name} (${i.addresses.map(formatIpv4).join(', ') || 'no IPv4'})`).join(', '));
  }
  if (chosen === undefined) {
    const name = await defaultRouteInterface();
    const address = interfaces.find((i) => i.name === name)?.addresses[0];
    if (address === undefined) {
      throw new ConfigError('--iface', name, `the default-route interface ${name} has no IPv4 address; pass --iface`);
    }
    chosen = { name, address };
  }

  // its name goes into iproute2 batch lines: anything but an ordinary name is refused, not quoted
  validateInterfaceName(chosen.name, '--iface');
  let publicIp = chosen.address;
  if (req.publicIp !== undefined && req.publicIp !== '') {
    const parsed = parseIpv4(req.publicIp);
    if (parsed === undefined) {
      throw new ConfigError('--public-ip', req.publicIp, `--public-ip "${req.publicIp}" is not an IPv4 address (example: 192.168.1.10)`);
    }
    publicIp = parsed;
  }
  return { name: chosen.name, ifaceAddress: chosen.address, publicIp, mtu: await readMtu(chosen.name) };
}
