/**
 * Picking the underlay interface the way flanneld does: `--iface` (a name or
 * an address; repeatable, first match wins), `--iface-regex`, else the
 * interface of the default route. The public IP is `--public-ip` or that
 * interface's first IPv4 address.
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
  readonly publicIp?: string | undefined;
}

interface IfaceInfo {
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

export async function resolveUnderlay(req: UnderlayRequest): Promise<Underlay> {
  const interfaces = await listInterfaces();
  let chosen: { name: string; address: number } | undefined;

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
  }
  if (chosen === undefined && req.iface.length > 0) {
    throw new ConfigError('--iface', req.iface.join(','),
      `no interface matches --iface ${req.iface.join(', ')}; interfaces here: ${interfaces.map((i) => i.name).join(', ')}`);
  }
  if (chosen === undefined && req.ifaceRegex.length > 0) {
    for (const text of req.ifaceRegex) {
      const re = compileRegex(text);
      const match = interfaces.find((i) => i.addresses.length > 0 && (re.test(i.name) || i.addresses.some((a) => re.test(formatIpv4(a)))));
      if (match !== undefined) {
        chosen = { name: match.name, address: match.addresses[0] as number };
        break;
      }
    }
    if (chosen === undefined) {
      throw new ConfigError('--iface-regex', req.ifaceRegex.join(','),
        `no interface with an IPv4 address matches --iface-regex ${req.ifaceRegex.join(', ')}`);
    }
  }
  if (chosen === undefined) {
    const name = await defaultRouteInterface();
    const address = interfaces.find((i) => i.name === name)?.addresses[0];
    if (address === undefined) {
      throw new ConfigError('--iface', name, `the default-route interface ${name} has no IPv4 address; pass --iface`);
    }
    chosen = { name, address };
  }

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
