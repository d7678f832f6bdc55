/**
 * The vxlan device `flannel.<VNI>`, as flanneld makes it
 * (pkg/backend/vxlan/device.go): local = this host's public address, device =
 * the underlay interface, the configured UDP port, learning and GBP, MTU =
 * overlay MTU, the lease's network address as a /32, link up.
 *
 * Its MAC (the VtepMAC other hosts' FDB entries point at) survives restarts:
 * an existing compatible device is kept as it is; a device weft re-creates gets
 * the MAC the host ledger recorded; only a first start picks a random one.
 * An existing vxlan device with other attributes is deleted and re-created (as
 * flanneld does); a device of another kind with that name is left alone unless
 * weft created it.
 */
import { randomBytes } from 'node:crypto';
import { writeFile } from 'node:fs/promises';
import { ConfigError, StateError } from '../../errors';
import type { HostLedger } from '../../host/ledger';
import { linkDetails, type LinkDetails } from '../../host/kernel-state';
import type { Logger } from '../../log';
import { formatIpv4, parseCidr, prefixContains, type Ipv4Prefix } from '../../net/ipv4';
import { ip } from '../../sys/exec';

export interface VxlanDeviceSpec {
  readonly name: string;
  readonly vni: number;
  readonly port: number;
  readonly gbp: boolean;
  readonly learning: boolean;
  /** Device MTU (the overlay MTU). */
  readonly mtu: number;
  readonly underlayName: string;
  /** VTEP source address (the public IP). */
  readonly local: number;
}

/** A random unicast, locally administered MAC (flannel's mac.NewHardwareAddr does the same). */
export function randomVtepMac(bytes: Buffer = randomBytes(6)): string {
  const b = Buffer.from(bytes.subarray(0, 6));
  b[0] = ((b[0] as number) & 0xfe) | 0x02;
  return [...b].map((x) => x.toString(16).padStart(2, '0')).join(':');
}

/** Why an existing device cannot be kept, or undefined when it can. Pure. */
export function vxlanIncompatibility(d: LinkDetails, spec: VxlanDeviceSpec): string | undefined {
  if (d.kind !== 'vxlan' || d.vxlan === undefined) return `it is a ${d.kind === '' ? 'device without a kind' : `${d.kind} device`}, not vxlan`;
  const v = d.vxlan;
  if (v.vni !== spec.vni) return `VNI ${v.vni}, want ${spec.vni}`;
  if (v.local !== spec.local) return `local ${v.local === undefined ? 'unset' : formatIpv4(v.local)}, want ${formatIpv4(spec.local)}`;
  if (v.dev !== spec.underlayName) return `device ${v.dev ?? 'unset'}, want ${spec.underlayName}`;
  if (v.port !== spec.port) return `port ${v.port}, want ${spec.port}`;
  if (v.gbp !== spec.gbp) return `GBP ${v.gbp}, want ${spec.gbp}`;
  if (v.learning !== spec.learning) return `learning ${v.learning}, want ${spec.learning}`;
  return undefined;
}

export function createCommand(spec: VxlanDeviceSpec, mac: string): string[] {
  return [
    'link', 'add', spec.name, 'address', mac, 'mtu', String(spec.mtu), 'type', 'vxlan', 'id', String(spec.vni),
    'local', formatIpv4(spec.local), 'dev', spec.underlayName, 'dstport', String(spec.port),
    spec.learning ? 'learning' : 'nolearning', ...(spec.gbp ? ['gbp'] : []),
  ];
}

/**
 * Makes sure the device exists with the spec's attributes; returns its details
 * (MAC included). Records a device it creates in the ledger. A device it has
 * to create gets, in this order: the MAC of the vxlan device it replaces,
 * `mac` (what this host's lease publishes, when re-creating a deleted device),
 * the MAC the ledger recorded, a random one.
 */
export async function ensureVxlanDevice(spec: VxlanDeviceSpec, ledger: HostLedger, log: Logger, mac?: string): Promise<LinkDetails> {
  const recorded = ledger.get({ kind: 'link', name: spec.name, linkKind: 'vxlan' });
  let existing = await linkDetails(spec.name);
  if (existing !== undefined) {
    const why = vxlanIncompatibility(existing, spec);
    if (why === undefined) {
      if (existing.mtu !== spec.mtu) {
        await ip(['link', 'set', spec.name, 'mtu', String(spec.mtu)]);
        log.info({ device: spec.name, mtu: spec.mtu, was: existing.mtu }, 'vxlan device MTU changed');
      }
      log.info({ device: spec.name, mac: existing.mac, adopted: recorded === undefined }, 'keeping the existing vxlan device');
      if (recorded !== undefined && recorded.mac !== existing.mac) await ledger.record({ ...recorded, mac: existing.mac });
      return (await linkDetails(spec.name)) as LinkDetails;
    }
    if (existing.kind !== 'vxlan') {
      // weft only ever creates vxlan devices under this name: this one is someone else's
      throw new ConfigError('Backend.VNI', spec.vni,
        `a device named ${spec.name} already exists and ${why}; weft did not create it and leaves it alone: ` +
        'remove it, or choose another Backend.VNI');
    }
    log.warn({ device: spec.name, reason: why }, 'the existing vxlan device has other attributes; re-creating it');
    await ip(['link', 'del', spec.name]);
  }
  mac = existing?.kind === 'vxlan' ? existing.mac : mac ?? recorded?.mac ?? randomVtepMac();
  await ip(createCommand(spec, mac));
  await ledger.record({ kind: 'link', name: spec.name, linkKind: 'vxlan', mac });
  // flanneld: no router advertisements on the device
  await writeFile(`/proc/sys/net/ipv6/conf/${spec.name}/accept_ra`, '0').catch(() => undefined);
  existing = await linkDetails(spec.name);
  if (existing === undefined) throw new StateError(`${spec.name} vanished right after it was created`);
  log.info({ device: spec.name, mac, vni: spec.vni, port: spec.port, mtu: spec.mtu }, 'vxlan device created');
  return existing;
}

/**
 * The lease's network address as the device's only address inside the
 * cluster network (a /32: no broadcast routes), then link up. Other addresses
 * outside the network are left alone.
 */
export async function configureVxlanDevice(name: string, address: number, network: Ipv4Prefix, expectedMac: string): Promise<void> {
  // one read gives the MAC and the addresses; neither an address change nor link up changes the MAC
  const details = await linkDetails(name);
  if (details?.mac !== expectedMac) {
    throw new StateError(`${name}'s MAC is ${details?.mac ?? 'unknown'} but the lease publishes ${expectedMac}; something changed it`);
  }
  const wanted = `${formatIpv4(address)}/32`;
  for (const text of details.addresses) {
    const cidr = parseCidr(text);
    if (text !== wanted && cidr !== undefined && prefixContains(network, cidr.address)) await ip(['addr', 'del', text, 'dev', name]);
  }
  await ip(['addr', 'replace', wanted, 'dev', name]);
  await ip(['link', 'set', name, 'up']);
}
