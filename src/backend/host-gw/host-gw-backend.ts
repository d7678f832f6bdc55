/**
 * flannel's host-gw backend (pkg/backend/hostgw): no encapsulation; per peer
 * lease a route `<subnet> via <peer's public IP> dev <underlay>`. That only
 * works when the peer is on this host's L2 segment: a peer that is not gets no
 * route and is reported. Only host-gw leases are used, as flanneld does. The
 * public IP must be the underlay interface's own address (no NAT), as flanneld
 * requires. On a stop for restart the routes stay.
 */
import type { Registry } from 'prom-client';
import { ConfigError } from '../../errors';
import { connectedPrefixes } from '../../host/kernel-state';
import { formatIpv4, formatPrefix, prefixContains, type Ipv4Prefix } from '../../net/ipv4';
import type { Lease, LeaseAttrs } from '../../subnet/lease';
import { ACCEPTED, type ApplyReport, type Backend, type BackendContext, type Peer, type PeerVerdict, type RouteView } from '../backend';
import { KernelPeerSync, type PeerTranslation } from '../kernel-peer-sync';
import type { PeerObjects } from '../kernel-peers';

export const HOST_GW_BACKEND_TYPE = 'host-gw';

export class HostGwBackend implements Backend {
  readonly type = HOST_GW_BACKEND_TYPE;
  readonly mtu: number;
  onFatal: (err: Error) => void = () => undefined;
  private readonly ctx: BackendContext;
  private readonly sync: KernelPeerSync;
  private own: Ipv4Prefix | undefined;

  constructor(ctx: BackendContext) {
    this.ctx = ctx;
    this.mtu = ctx.underlay.mtu;
    this.sync = new KernelPeerSync({
      scope: () => ({ network: ctx.network, own: this.own ?? { network: 0, length: 32 }, device: undefined }),
      translate: (peers) => this.translate(peers),
      resyncMs: ctx.kernelResyncSeconds * 1000,
      log: ctx.log,
    });
  }

  async prepare(): Promise<LeaseAttrs> {
    const u = this.ctx.underlay;
    if (u.publicIp !== u.ifaceAddress) {
      throw new ConfigError('--public-ip', formatIpv4(u.publicIp),
        `--public-ip ${formatIpv4(u.publicIp)} differs from ${u.name}'s address ${formatIpv4(u.ifaceAddress)}, which means NAT; ` +
        'the host-gw backend routes to peers\' interface addresses directly and cannot work through NAT (flanneld refuses this too): ' +
        'drop --public-ip, or use the vxlan or udp backend');
    }
    return { publicIp: u.publicIp, backendType: HOST_GW_BACKEND_TYPE };
  }

  async start(lease: Lease): Promise<void> {
    this.own = lease.subnet;
    this.sync.startResync((report) => {
      for (const f of report.failed) this.ctx.log.debug({ subnet: formatPrefix(f.subnet), reason: f.reason }, 'peer not programmed');
    });
  }

  accepts(peer: Peer): PeerVerdict {
    if (peer.backendType !== HOST_GW_BACKEND_TYPE) {
      return { ok: false, reason: `its BackendType is "${peer.backendType}"; the host-gw backend uses only host-gw leases (as flanneld does)` };
    }
    return ACCEPTED;
  }

  private async translate(peers: readonly Peer[]): Promise<PeerTranslation> {
    const dev = this.ctx.underlay.name;
    const segment = await connectedPrefixes(dev);
    const objects: PeerObjects[] = [];
    const via = new Map<string, string>();
    const unroutable: { subnet: Ipv4Prefix; reason: string }[] = [];
    for (const peer of peers) {
      if (!segment.some((p) => prefixContains(p, peer.publicIp))) {
        unroutable.push({
          subnet: peer.subnet,
          reason: `its public IP ${formatIpv4(peer.publicIp)} is not on ${dev}'s segment (${segment.map(formatPrefix).join(', ') || 'no IPv4 address'}); ` +
            'host-gw needs every host on one L2 segment: use the vxlan backend (with DirectRouting) across routers',
        });
        continue;
      }
      objects.push({ subnet: peer.subnet, route: { gateway: peer.publicIp, dev, onlink: false } });
      via.set(formatPrefix(peer.subnet), 'host-gw');
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

  async stop(mode: 'keep' | 'remove'): Promise<void> {
    await this.sync.stop();
    if (mode === 'remove') await this.sync.apply([]).catch(() => undefined);
  }
}
