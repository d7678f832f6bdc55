/**
 * flannel's vxlan backend, programmed as flanneld programs it
 * (pkg/backend/vxlan): the kernel carries the traffic; weft keeps the device
 * and, per peer lease,
 *
 *   route   <subnet> via <subnet's network address> dev flannel.<VNI> onlink
 *   neigh   <subnet's network address> lladdr <peer's VtepMAC> dev flannel.<VNI> nud permanent
 *   fdb     <peer's VtepMAC> dev flannel.<VNI> dst <peer's public IP> self permanent
 *
 * With DirectRouting, a peer whose public IP is on this host's underlay
 * segment gets `<subnet> via <public IP> dev <underlay>` instead (no
 * encapsulation). Only vxlan leases with a VtepMAC are used, as flanneld does.
 * On a stop for restart everything stays, so pods keep talking.
 */
import type { Registry } from 'prom-client';
import { formatIpv4, formatPrefix, prefixContains, type Ipv4Prefix } from '../../net/ipv4';
import { connectedPrefixes, linkDetails } from '../../host/kernel-state';
import { ip } from '../../sys/exec';
import type { Lease, LeaseAttrs } from '../../subnet/lease';
import { ACCEPTED, type ApplyReport, type Backend, type BackendContext, type Peer, type PeerVerdict, type RouteView } from '../backend';
import { KernelPeerSync, type PeerTranslation } from '../kernel-peer-sync';
import type { PeerObjects } from '../kernel-peers';
import { VXLAN_OVERHEAD_BYTES, type VxlanBackendConfig } from './vxlan-config';
import { configureVxlanDevice, ensureVxlanDevice, vxlanIncompatibility, type VxlanDeviceSpec } from './vxlan-device';

export const VXLAN_BACKEND_TYPE = 'vxlan';

/** flannel's vxlan device name for a VNI. */
export function vxlanDeviceName(vni: number): string {
  return `flannel.${vni}`;
}

const MAC_RE = /^[0-9a-f]{2}(:[0-9a-f]{2}){5}$/;

/** The VtepMAC in a vxlan lease's BackendData (keys match case-insensitively, as Go's json), or why there is none. Pure. */
export function vtepMacOf(backendData: unknown): { mac: string } | { reason: string } {
  if (typeof backendData !== 'object' || backendData === null || Array.isArray(backendData)) {
    return { reason: 'its lease has no BackendData with a VtepMAC' };
  }
  const key = Object.keys(backendData).find((k) => k.toLowerCase() === 'vtepmac');
  const value = key === undefined ? undefined : (backendData as Record<string, unknown>)[key];
  if (typeof value !== 'string') return { reason: 'its lease\'s BackendData has no VtepMAC' };
  const mac = value.toLowerCase().replace(/-/g, ':');
  if (!MAC_RE.test(mac)) return { reason: `its lease's VtepMAC ${JSON.stringify(value)} is not a MAC address` };
  if (mac === '00:00:00:00:00:00' || (parseInt(mac.slice(0, 2), 16) & 1) === 1) {
    return { reason: `its lease's VtepMAC ${mac} is not a unicast address` };
  }
  return { mac };
}

export class VxlanBackend implements Backend {
  readonly type = VXLAN_BACKEND_TYPE;
  readonly mtu: number;
  readonly device: string;
  onFatal: (err: Error) => void = () => undefined;
  private readonly config: VxlanBackendConfig;
  private readonly ctx: BackendContext;
  private readonly spec: VxlanDeviceSpec;
  private readonly sync: KernelPeerSync;
  private mac = '';
  private own: Ipv4Prefix | undefined;

  constructor(config: VxlanBackendConfig, ctx: BackendContext) {
    this.config = config;
    this.ctx = ctx;
    this.device = vxlanDeviceName(config.vni);
    // flannel: MTU defaults to the underlay's; the device and pods get it minus the encapsulation
    this.mtu = (config.mtu ?? ctx.underlay.mtu) - VXLAN_OVERHEAD_BYTES;
    this.spec = {
      name: this.device,
      vni: config.vni,
      port: config.port,
      gbp: config.gbp,
      learning: config.learning,
      mtu: this.mtu,
      underlayName: ctx.underlay.name,
      local: ctx.underlay.publicIp,
    };
    this.sync = new KernelPeerSync({
      scope: () => ({ network: ctx.network, own: this.own ?? { network: 0, length: 32 }, device: this.device }),
      translate: (peers) => this.translate(peers),
      beforeResync: () => this.ensureDevice(),
      resyncMs: ctx.kernelResyncSeconds * 1000,
      log: ctx.log,
    });
  }

  async prepare(): Promise<LeaseAttrs> {
    const details = await ensureVxlanDevice(this.spec, this.ctx.ledger, this.ctx.log);
    this.mac = details.mac;
    this.ctx.log.info({
      vni: this.config.vni, port: this.config.port, gbp: this.config.gbp, learning: this.config.learning,
      directRouting: this.config.directRouting, mtu: this.mtu,
    }, 'vxlan backend');
    return {
      publicIp: this.ctx.underlay.publicIp,
      backendType: VXLAN_BACKEND_TYPE,
      backendData: { VNI: this.config.vni, VtepMAC: this.mac },
    };
  }

  async start(lease: Lease): Promise<void> {
    this.own = lease.subnet;
    await configureVxlanDevice(this.device, lease.subnet.network, this.ctx.network, this.mac);
    this.sync.startResync((report) => {
      for (const f of report.failed) this.ctx.log.debug({ subnet: formatPrefix(f.subnet), reason: f.reason }, 'peer not programmed');
    });
  }

  /**
   * Before each resync: re-creates the device, with the MAC the lease
   * publishes, if someone deleted it (or changed it); the routes and entries
   * on it follow in the same resync. A device as it should be costs one read.
   */
  private async ensureDevice(): Promise<void> {
    if (this.own === undefined) return;
    const now = await linkDetails(this.device);
    const address = `${formatIpv4(this.own.network)}/32`;
    if (now !== undefined && now.up && now.mac === this.mac && now.mtu === this.spec.mtu && now.addresses.includes(address) &&
      vxlanIncompatibility(now, this.spec) === undefined) return;
    this.ctx.log.warn({ device: this.device, found: now === undefined ? 'nothing' : `${now.kind} ${now.mac}${now.up ? '' : ' down'}` },
      'the vxlan device is gone or changed; restoring it');
    const details = await ensureVxlanDevice(this.spec, this.ctx.ledger, this.ctx.log, this.mac);
    if (details.mac !== this.mac) this.ctx.log.error({ lease: this.mac, device: details.mac }, 'the vxlan device came back with another MAC than the lease publishes');
    await configureVxlanDevice(this.device, this.own.network, this.ctx.network, this.mac);
  }

  accepts(peer: Peer): PeerVerdict {
    if (peer.backendType !== VXLAN_BACKEND_TYPE) {
      return { ok: false, reason: `its BackendType is "${peer.backendType}"; the vxlan backend uses only vxlan leases (as flanneld does)` };
    }
    const mac = vtepMacOf(peer.backendData);
    return 'reason' in mac ? { ok: false, reason: mac.reason } : ACCEPTED;
  }

  private async translate(peers: readonly Peer[]): Promise<PeerTranslation> {
    const segment = this.config.directRouting ? await connectedPrefixes(this.ctx.underlay.name) : [];
    const objects: PeerObjects[] = [];
    const via = new Map<string, string>();
    const unroutable: { subnet: Ipv4Prefix; reason: string }[] = [];
    // one VtepMAC reaches one host (one FDB remote): of several leases publishing it, the first by subnet wins
    const macOwner = new Map<string, Peer>();
    for (const peer of [...peers].sort((a, b) => a.subnet.network - b.subnet.network)) {
      const mac = vtepMacOf(peer.backendData);
      if ('mac' in mac && !macOwner.has(mac.mac)) macOwner.set(mac.mac, peer);
    }
    for (const peer of peers) {
      const key = formatPrefix(peer.subnet);
      if (segment.some((p) => prefixContains(p, peer.publicIp))) {
        objects.push({ subnet: peer.subnet, route: { gateway: peer.publicIp, dev: this.ctx.underlay.name, onlink: false } });
        via.set(key, 'direct');
        continue;
      }
      const mac = vtepMacOf(peer.backendData);
      if ('reason' in mac) {
        unroutable.push({ subnet: peer.subnet, reason: mac.reason });
        continue;
      }
      const owner = macOwner.get(mac.mac);
      if (owner !== undefined && owner !== peer) {
        unroutable.push({
          subnet: peer.subnet,
          reason: `its VtepMAC ${mac.mac} is also the lease of ${formatPrefix(owner.subnet)} (${formatIpv4(owner.publicIp)}), ` +
            'and one MAC can reach only one host; a stale lease of a host that changed its address? delete the one that is wrong',
        });
        continue;
      }
      const hop = peer.subnet.network;
      objects.push({
        subnet: peer.subnet,
        route: { gateway: hop, dev: this.device, onlink: true },
        neighbour: { ip: hop, mac: mac.mac },
        fdb: { mac: mac.mac, dst: peer.publicIp },
      });
      via.set(key, 'vxlan');
    }
    return { objects, via, unroutable };
  }

  applyPeers(peers: readonly Peer[]): Promise<ApplyReport> {
    return this.sync.apply(peers);
  }

  routes(): readonly RouteView[] {
    return this.sync.routes();
  }

  /** The kernel carries the traffic: no userspace data plane to show. */
  dataPlane(): null {
    return null;
  }

  registerMetrics(registry: Registry): void {
    this.sync.registerMetrics(registry);
  }

  /** keep: device, routes and entries stay for the next start. remove: the device (entries go with it) and weft's routes. */
  async stop(mode: 'keep' | 'remove'): Promise<void> {
    await this.sync.stop();
    if (mode === 'keep') return;
    await this.sync.apply([]).catch(() => undefined);
    await this.sync.stop();
    const recorded = this.ctx.ledger.get({ kind: 'link', name: this.device, linkKind: 'vxlan' });
    if (recorded !== undefined) {
      await ip(['link', 'del', this.device]).catch(() => undefined);
      await this.ctx.ledger.forget(recorded);
    }
    this.ctx.log.info({ device: this.device, public: formatIpv4(this.ctx.underlay.publicIp) }, 'vxlan device removed');
  }
}
