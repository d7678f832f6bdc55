/**
 * flannel's udp backend, wire-compatible: every datagram between hosts is
 * UDP port -> port whose payload is exactly one inner IPv4 packet.
 *
 * Owns: the TUN device, the UDP socket, the forwarding workers and the route
 * table. Workers borrow the descriptors; stop() releases all of it (the TUN is
 * not persistent: it goes away with the process, as flanneld's does).
 *
 * Its lease carries no BackendType, exactly as flanneld's udp backend writes
 * it, and it routes every lease it sees, whatever the lease's type (flanneld's
 * udp does too): a udp host can reach any host that runs a udp data plane on
 * the network's port.
 */
import type { Registry } from 'prom-client';
import { ConfigError, toSysError } from '../../errors';
import { ENCAP_OVERHEAD_BYTES } from '../../encap';
import { loadNative, type NativeBinding } from '../../native';
import { formatIpv4, formatPrefix, type Ipv4Prefix } from '../../net/ipv4';
import { RouteTable } from '../../routing';
import type { Lease, LeaseAttrs } from '../../subnet/lease';
import { TunDevice, validateTunName } from '../../tun/tun-device';
import { COUNTER_INFO, type CounterInfo } from '../../workers/counters';
import { NO_OFFLOADS, type OffloadOptions } from '../../workers/forwarder';
import { PEER_DROPS, PeerCounter, sumPeerSlot } from '../../workers/peer-counters';
import { ForwarderPool } from '../../workers/pool';
import {
  ACCEPTED, type ApplyReport, type Backend, type BackendContext, type DataPlaneView, type Peer, type PeerTraffic, type PeerVerdict,
  type RouteView,
} from '../backend';
import { reconcilePeers } from '../kernel-peers';
import { BpfFastPath, FAST_PATH_BPF, FAST_PATH_LEASE_KEY, type FastPathRoute, ifindexOf } from '../../fastpath/bpf-fast-path';
import { registerFastPathMetrics } from '../../fastpath/fast-path-metrics';
import type { UdpBackendConfig } from './udp-config';
import { offloadNames, registerDataPlaneMetrics, registerPeerMetrics } from './udp-metrics';
import type { FastPathMode, RequestedOffloads } from './udp-options';

export const UDP_BACKEND_TYPE = 'udp';

/** One slot's summed per-peer figures as the backend reports them (drops with none left out). */
function peerTraffic(slot: Float64Array): PeerTraffic {
  const drops: Record<string, number> = {};
  for (const d of PEER_DROPS) {
    const n = slot[d.index] as number;
    if (n > 0) drops[`${d.direction}/${d.reason}`] = n;
  }
  return {
    txPackets: slot[PeerCounter.TxPackets] as number,
    txBytes: slot[PeerCounter.TxBytes] as number,
    rxPackets: slot[PeerCounter.RxPackets] as number,
    rxBytes: slot[PeerCounter.RxBytes] as number,
    drops,
  };
}

/** Largest message accepted from a peer (any IPv4 packet, or a UDP_GRO message of up to 64 KiB). */
const UDP_SLOT_BYTES = 65536;
/** A TUN read with offloads: virtio-net header + a super-packet of up to 64 KiB. */
const TUN_OFFLOAD_SLOT_BYTES = 65536 + 64;

export class UdpBackend implements Backend {
  readonly type = UDP_BACKEND_TYPE;
  readonly mtu: number;
  private readonly config: UdpBackendConfig;
  private readonly ctx: BackendContext;
  private native: NativeBinding | undefined;
  private readonly table = new RouteTable();
  private device: TunDevice | undefined;
  /** The offloads in effect after probing the kernel. */
  offloads: OffloadOptions = NO_OFFLOADS;
  /** One socket per worker; with several, SO_REUSEPORT keeps each peer's datagrams on one of them (in order). */
  private readonly udpFds: number[] = [];
  /** With --spread-flows and several workers: worker w >= 1 sends from sendFds[w - 1], its own source port. */
  private readonly sendFds: number[] = [];
  private pool: ForwarderPool | undefined;
  /** The kernel fast path, when asked for and the kernel took it. */
  private fast: BpfFastPath | undefined;
  /** Peers (by subnet) whose hosts decapsulate in the kernel: the fast path may send them super-packets. */
  private fastPeers = new Set<string>();
  /** The route set last given to the fast path, to skip identical updates. */
  private fastRoutesKey = '';
  private stopped = false;
  /** Called when the data plane fails at run time (a worker died); the agent replaces it to stop. */
  onFatal: (err: Error) => void = (err) => this.ctx.log.error({ err }, 'data plane failed');

  constructor(config: UdpBackendConfig, ctx: BackendContext) {
    validateTunName(ctx.udp.tunName);
    this.config = config;
    this.ctx = ctx;
    this.mtu = ctx.underlay.mtu - ENCAP_OVERHEAD_BYTES;
  }

  /** Checks the MTU; the lease is flanneld's udp lease: PublicIP only. */
  async prepare(): Promise<LeaseAttrs> {
    if (this.mtu < 576) {
      throw new ConfigError('--iface', this.ctx.underlay.mtu,
        `the underlay MTU ${this.ctx.underlay.mtu} leaves an overlay MTU of ${this.mtu}, below IPv4's minimum of 576; use an interface with MTU >= 604`);
    }
    this.native = loadNative();
    this.prepareFastPath();
    return {
      publicIp: this.ctx.underlay.publicIp,
      backendType: '',
      // flanneld's udp ignores BackendData; a weft host reads it to know this host takes super-packets
      ...(this.fast === undefined ? {} : { backendData: { [FAST_PATH_LEASE_KEY]: FAST_PATH_BPF } }),
    };
  }

  /** --fast-path, else net-conf.json's Backend.FastPath, else off. */
  private fastPathMode(): FastPathMode {
    return this.ctx.udp.fastPath ?? this.config.fastPath ?? 'off';
  }

  /**
   * --fast-path bpf: load the programs and attach decap to the underlay now,
   * before the lease says this host decapsulates in the kernel. Off (or
   * unavailable): remove a decap filter a killed weft left there.
   */
  private prepareFastPath(): void {
    const log = this.ctx.log;
    const device = this.ctx.underlay.name;
    let ifindex: number;
    try {
      ifindex = ifindexOf(device);
    } catch (err) {
      if (this.fastPathMode() === 'bpf') log.warn({ err: (err as Error).message }, 'the kernel fast path is unavailable: every packet takes the userspace path');
      return;
    }
    if (this.fastPathMode() === 'bpf') {
      try {
        this.fast = BpfFastPath.open(ifindex);
        log.info({ device }, 'kernel fast path: decapsulation attached to the underlay');
        return;
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'the kernel fast path is unavailable: every packet takes the userspace path');
      }
    }
    try {
      if (BpfFastPath.removeStale(ifindex)) log.info({ device }, 'removed the kernel fast path a previous weft left on the underlay');
    } catch (err) {
      log.warn({ device, err: (err as Error).message }, 'cannot check the underlay for a fast path a previous weft left');
    }
  }

  /** Creates the socket, the device and the workers; cleans up after itself on failure. */
  async start(lease: Lease): Promise<void> {
    try {
      await this.open(lease.subnet);
    } catch (err) {
      await this.stop('remove');
      throw err;
    }
    // routes a kernel backend (vxlan, host-gw) left inside the network would take traffic away from the TUN
    const swept = await reconcilePeers([], { network: this.ctx.network, own: lease.subnet, device: undefined });
    if (swept.removed > 0) this.ctx.log.info({ removed: swept.removed }, 'removed peer routes a kernel backend had left');
  }

  private async open(subnet: Ipv4Prefix): Promise<void> {
    const o = this.ctx.udp;
    const log = this.ctx.log;
    const native = this.native as NativeBinding;
    const bind = this.ctx.underlay.ifaceAddress;
    const port = this.config.port;
    try {
      const flags = o.workers > 1 ? native.UDP_REUSEPORT : 0;
      for (let w = 0; w < o.workers; w++) {
        const udp = native.udpOpen(bind, port, flags, o.socketBufferBytes, o.socketBufferBytes);
        this.udpFds.push(udp.fd);
        if (w === 0) log.info({ bind: `${formatIpv4(bind)}:${port}`, sockets: o.workers, rcvbuf: udp.rcvbuf, sndbuf: udp.sndbuf }, 'udp socket open');
      }
    } catch (err) {
      throw toSysError(err, `cannot open UDP port ${formatIpv4(bind)}:${port}`,
        'is another flanneld or weft using the port? (Backend.Port in net-conf.json chooses it)');
    }
    if (o.workers > 1 && o.spreadFlows !== false) this.spreadFlows(bind);
    const want = o.offloads;
    this.device = await TunDevice.create(native, {
      name: o.tunName,
      address: subnet.network,
      mtu: this.mtu,
      network: this.ctx.network,
      queues: o.workers,
      vnetHdr: want.tunOffload,
      txQueueLen: o.tunTxQueueLen,
    });
    log.info({ device: this.device.name, address: `${formatIpv4(subnet.network)}/32`, mtu: this.mtu, route: formatPrefix(this.ctx.network) }, 'tun device up');
    this.offloads = this.probeOffloads(this.device, want);
    log.info({ requested: want, inEffect: this.offloads }, 'offloads');
    const tunSlotSize = this.offloads.vnetHdr ? TUN_OFFLOAD_SLOT_BYTES : Math.ceil(Math.max(this.mtu, 1500) / 64) * 64;
    this.pool = await ForwarderPool.start({
      tunFds: this.device.fds,
      udpFds: this.udpFds,
      ...(this.sendFds.length === 0 ? {} : { sendFds: [this.udpFds[0] as number, ...this.sendFds] }),
      workers: o.workers,
      tunAddress: subnet.network,
      localSubnet: subnet,
      clusterNetwork: this.ctx.network,
      sourceValidation: o.sourceValidation,
      batchSize: o.batchSize,
      tunSlotSize,
      udpSlotSize: UDP_SLOT_BYTES,
      icmpPerSecond: o.icmpPerSecond,
      routes: this.table.snapshot(),
      offloads: this.offloads,
      busyPollMicros: o.busyPollMicros,
      adaptivePoll: o.adaptivePoll ?? false,
      shortTunReads: o.shortTunReads ?? true,
      tunMtu: this.mtu,
      peerCounters: o.peerCounters ?? true,
    }, (err) => this.onFatal(err));
    log.info({ workers: o.workers, batch: o.batchSize }, 'data plane running');
    if (this.fast !== undefined) this.startFastPath(subnet, this.device);
  }

  /** The TUN exists: tell the programs where things are, attach encap, give them the routes. */
  private startFastPath(subnet: Ipv4Prefix, device: TunDevice): void {
    const fast = this.fast as BpfFastPath;
    const log = this.ctx.log;
    const tunIfindex = ifindexOf(device.name);
    fast.configure({
      // the address the UDP socket is bound to: what the userspace path sends from and receives on (--public-ip may be a NAT's)
      localIp: this.ctx.underlay.ifaceAddress,
      port: this.config.port,
      subnet,
      cluster: this.ctx.network,
      tunIfindex,
      underlayIfindex: ifindexOf(this.ctx.underlay.name),
      validateSources: this.ctx.udp.sourceValidation,
    });
    this.syncFastRoutes();
    try {
      fast.attachEncap(tunIfindex);
      log.info({ device: device.name }, 'kernel fast path: encapsulation attached to the TUN');
    } catch (err) {
      // decap stays (the lease says this host takes super-packets); sending stays in userspace
      log.warn({ err: (err as Error).message }, 'cannot attach the fast path\'s encapsulation: packets leave through the userspace path');
    }
  }

  /** The fast path's routes: the route table, each peer marked when its host decapsulates in the kernel. */
  private syncFastRoutes(): void {
    const fast = this.fast;
    if (fast === undefined) return;
    const routes: FastPathRoute[] = this.table.entries().map((e) => ({
      subnet: e.prefix, peer: e.peer.address, port: e.peer.port, fast: this.fastPeers.has(formatPrefix(e.prefix)),
    }));
    const key = routes.map((r) => `${formatPrefix(r.subnet)}>${r.peer}:${r.port}${r.fast ? '+' : ''}`).join(',');
    if (key === this.fastRoutesKey) return;
    fast.setRoutes(routes);
    this.fastRoutesKey = key;
  }

  /**
   * Several workers: all flows between two hosts share one outer 4-tuple, so
   * the kernel's reuseport choice would hand every datagram from a peer to one
   * worker. A reuseport program picks the worker by the inner flow instead, and
   * workers past the first send from their own source port (a flannel peer
   * ignores the source port; a weft peer goes by the inner flow anyway).
   */
  private spreadFlows(bind: number): void {
    const native = this.native as NativeBinding;
    const o = this.ctx.udp;
    try {
      native.udpSteerByInnerFlow(this.udpFds[0] as number, o.workers);
      for (let w = 1; w < o.workers; w++) {
        this.sendFds.push(native.udpOpen(bind, 0, 0, o.socketBufferBytes, o.socketBufferBytes).fd);
      }
      this.ctx.log.info({ workers: o.workers }, 'received flows spread over the workers by the inner packet; each worker sends from its own port');
    } catch (err) {
      for (const fd of this.sendFds.splice(0)) native.closeFd(fd);
      this.ctx.log.warn({ err: (err as Error).message }, 'cannot spread flows over the workers: each peer\'s datagrams go to one worker');
    }
  }

  /** Turns on what was asked for and the kernel supports; says once what falls back. */
  private probeOffloads(device: TunDevice, want: RequestedOffloads): OffloadOptions {
    const n = this.native as NativeBinding;
    const log = this.ctx.log;
    const vnetHdr = want.tunOffload;
    let uso = false;
    if (vnetHdr) {
      const base = n.TUN_F_CSUM | n.TUN_F_TSO4 | n.TUN_F_TSO_ECN;
      try {
        // the kernel accepts USO only as the pair USO4|USO6 (EINVAL for one alone)
        device.setOffload(base | (want.coalesceUdp ? n.TUN_F_USO4 | n.TUN_F_USO6 : 0));
        uso = want.coalesceUdp;
      } catch (err) {
        try {
          device.setOffload(base);
          if (want.coalesceUdp) log.warn({ err: (err as Error).message }, 'the kernel refused TUN USO (needs >= 6.2): UDP coalescing is off');
        } catch (err2) {
          log.warn({ err: (err2 as Error).message }, 'the kernel refused TUN checksum/TSO offload: packets are read one MTU at a time');
          // the device keeps its virtio-net header; packets simply never arrive as super-packets
        }
      }
    }
    let udpGro = want.udpGro;
    if (udpGro && this.fast !== undefined) {
      // GRO would merge a peer's datagrams into one before the fast path's decap sees them, which then takes none
      udpGro = false;
      log.info('UDP_GRO is off: with the fast path the kernel decapsulates datagrams one by one');
    }
    if (udpGro) {
      try {
        for (const fd of this.udpFds) n.udpSetGro(fd, true);
      } catch (err) {
        udpGro = false;
        log.warn({ err: (err as Error).message }, 'the kernel refused UDP_GRO: one datagram per received message');
      }
    }
    let udpGso = want.udpGso && vnetHdr;
    if (udpGso && !n.udpGsoSupported(this.udpFds[0] as number)) {
      udpGso = false;
      log.warn('the kernel lacks UDP_SEGMENT: split super-packets leave as separate datagrams of one sendmmsg');
    }
    if (!vnetHdr && (want.coalesceTcp || want.coalesceUdp)) {
      log.info('TUN coalescing needs --tun-offload; it is off');
    }
    let groFlags = vnetHdr ? (want.coalesceTcp ? n.GRO_TCP : 0) | (uso ? n.GRO_UDP : 0) : 0;
    if (groFlags !== 0 && want.trustOuterChecksum === true) {
      try {
        // a datagram longer than one underlay packet can carry crossed no wire whole: a fast-path peer's super-packet,
        // whose TCP checksum the workers check themselves (Forwarder.writeSuper)
        for (const fd of this.udpFds) n.udpRejectZeroChecksum(fd, this.ctx.underlay.mtu - 20);
        groFlags |= n.GRO_TRUST_L4_CSUM;
      } catch (err) {
        log.warn({ err: (err as Error).message }, 'cannot filter datagrams without a UDP checksum: coalescing re-verifies every inner checksum');
      }
    }
    const packRuns = udpGso && want.udpGsoRuns === true;
    return { vnetHdr, udpGso, udpGro, groFlags, packRuns };
  }

  /** Every lease: flanneld's udp data plane routes whatever it sees. */
  accepts(_peer: Peer): PeerVerdict {
    return ACCEPTED;
  }

  /**
   * Replaces the peer set; the workers hear of it only when it differs from
   * the current one. Routes that stay keep their counter slots (their
   * figures go on); once every worker has the new snapshot, the slots of
   * removed routes are cleared for reuse.
   */
  async applyPeers(peers: readonly Peer[]): Promise<ApplyReport> {
    const want = new Map(peers.map((p) => [formatPrefix(p.subnet), { subnet: p.subnet, address: p.publicIp, port: p.port ?? this.config.port }]));
    this.fastPeers = new Set(peers.filter((p) => this.runsFastPath(p)).map((p) => formatPrefix(p.subnet)));
    let added = 0;
    let removed = 0;
    for (const e of this.table.entries()) {
      if (!want.has(formatPrefix(e.prefix)) && this.table.delete(e.prefix)) removed++;
    }
    for (const p of want.values()) {
      if (this.table.set(p.subnet, { address: p.address, port: p.port })) added++;
    }
    if (added + removed > 0) {
      const snapshot = this.table.snapshot();
      const pool = this.pool;
      if (pool !== undefined) await pool.setRoutes(snapshot);
      this.table.releaseSlots(snapshot.version, (slot) => pool?.clearPeerSlot(slot));
    }
    this.syncFastRoutes();
    return { routed: want.size, added, removed, failed: [] };
  }

  /** A peer's host decapsulates in its kernel: its lease says so, or static mode declares every --peer does. */
  private runsFastPath(peer: Peer): boolean {
    if (this.ctx.udp.fastPathStaticPeers === true) return true;
    const data = peer.backendData;
    return typeof data === 'object' && data !== null && (data as Record<string, unknown>)[FAST_PATH_LEASE_KEY] === FAST_PATH_BPF;
  }

  routes(): readonly RouteView[] {
    const blocks = this.pool?.peerCounterBlocks() ?? [];
    return this.table.entries().map((e) => ({
      subnet: e.prefix, publicIp: e.peer.address, via: 'udp', port: e.peer.port,
      traffic: blocks.length === 0 ? undefined : peerTraffic(sumPeerSlot(blocks, e.slot)),
    }));
  }

  dataPlane(): DataPlaneView | null {
    if (this.pool === undefined) return null;
    const totals = this.pool.counterBlocks();
    const drops: Record<string, number> = {};
    for (let i = 0; i < COUNTER_INFO.length; i++) {
      const info = COUNTER_INFO[i] as CounterInfo;
      if (info.metric !== 'weft_dropped_packets_total' || info.labels === undefined) continue;
      let n = 0;
      for (const b of totals) n += b[i] as number;
      if (n > 0) drops[`${info.labels['direction'] ?? ''}/${info.labels['reason'] ?? ''}`] = n;
    }
    return { workers: this.pool.size, offloads: offloadNames(this.offloads), drops };
  }

  registerMetrics(registry: Registry): void {
    registerDataPlaneMetrics(registry, {
      counterBlocks: () => this.pool?.counterBlocks() ?? [],
      workers: () => this.pool?.size ?? 0,
      offloads: () => this.offloads,
      socketDrops: () => this.udpFds.reduce((sum, fd) => sum + (this.native?.udpSocketDrops(fd) ?? 0), 0),
    });
    registerPeerMetrics(registry, () => this.routes());
    registerFastPathMetrics(registry, { counters: () => this.fast?.counters() });
  }

  /** Data-plane totals by counter name (logged at stop). */
  counters(): Record<string, number> {
    const fast = this.fast?.counters();
    return { ...(this.pool?.counters() ?? {}), ...(fast === undefined ? {} : Object.fromEntries(Object.entries(fast).map(([k, v]) => [`fast_path_${k}`, v]))) };
  }

  /** Workers first (they borrow the descriptors), then the device, then the socket. Both modes: the TUN is not persistent. */
  async stop(_mode: 'keep' | 'remove' = 'keep'): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    const totals = this.counters();
    this.fast?.close(); // before the TUN goes: both programs detached, nothing left on the underlay
    if (this.pool !== undefined) await this.pool.stop();
    this.device?.close();
    for (const fd of [...this.udpFds.splice(0), ...this.sendFds.splice(0)]) this.native?.closeFd(fd);
    if (this.pool !== undefined) this.ctx.log.info({ counters: totals }, 'data plane stopped');
  }
}
