/**
 * flannel's udp backend, wire-compatible: every datagram between hosts is
 * UDP port -> port whose payload is exactly one inner IPv4 packet.
 *
 * Owns: the TUN device, the UDP socket, the forwarding workers and the route
 * table. Workers borrow the descriptors; stop() releases all of it.
 */
import { ConfigError, toSysError } from '../errors';
import { ENCAP_OVERHEAD_BYTES } from '../encap';
import type { NativeBinding } from '../native';
import { formatIpv4, formatPrefix, type Ipv4Prefix } from '../net/ipv4';
import type { Logger } from '../log';
import { RouteTable } from '../routing';
import { TunDevice } from '../tun/tun-device';
import { NO_OFFLOADS, type OffloadOptions } from '../workers/forwarder';
import { ForwarderPool } from '../workers/pool';
import type { Backend, PeerLease } from './backend';
import { checkPeers } from './peer-spec';

export interface UdpBackendOptions {
  readonly tunName: string;
  readonly network: Ipv4Prefix;
  /** This host's lease. */
  readonly subnet: Ipv4Prefix;
  /** Address to bind the UDP socket to (the underlay interface's address). */
  readonly bindAddress: number;
  readonly underlayMtu: number;
  readonly port: number;
  readonly workers: number;
  readonly batchSize: number;
  readonly socketBufferBytes: number;
  readonly icmpPerSecond: number;
  readonly offloads: RequestedOffloads;
  /** TUN transmit queue (packets the kernel holds for weft to read). */
  readonly tunTxQueueLen: number;
  /** Workers keep polling this long after handling packets (0 = off). */
  readonly busyPollMicros: number;
  readonly log: Logger;
}

/** What the operator asked for; each falls back, logged once, when the kernel lacks it. */
export interface RequestedOffloads {
  /** virtio-net header on the TUN with checksum and TSO offload: 64 KiB TCP super-packets. */
  readonly tunOffload: boolean;
  /** UDP_SEGMENT: a split super-packet leaves in one system call. */
  readonly udpGso: boolean;
  /** UDP_GRO: many datagrams per received message. */
  readonly udpGro: boolean;
  /** Merge consecutive TCP segments of a flow into one TUN write (needs tunOffload). */
  readonly coalesceTcp: boolean;
  /** Merge consecutive UDP datagrams of a flow into one TUN write (needs tunOffload and TUN USO, kernel >= 6.2). */
  readonly coalesceUdp: boolean;
}

export const DEFAULT_TUN_TXQUEUELEN = 1000;

export const DEFAULT_BATCH_SIZE = 128;
export const DEFAULT_SOCKET_BUFFER_BYTES = 8 * 1024 * 1024;
export const DEFAULT_ICMP_PER_SECOND = 1000;
/** Largest message accepted from a peer (any IPv4 packet, or a UDP_GRO message of up to 64 KiB). */
const UDP_SLOT_BYTES = 65536;
/** A TUN read with offloads: virtio-net header + a super-packet of up to 64 KiB. */
const TUN_OFFLOAD_SLOT_BYTES = 65536 + 64;

export class UdpBackend implements Backend {
  readonly type = 'udp' as const;
  readonly mtu: number;
  private readonly options: UdpBackendOptions;
  private readonly native: NativeBinding;
  private readonly table = new RouteTable();
  private device: TunDevice | undefined;
  /** The offloads in effect after probing the kernel. */
  offloads: OffloadOptions = NO_OFFLOADS;
  /** One socket per worker; with several, SO_REUSEPORT keeps each peer's datagrams on one of them (in order). */
  private readonly udpFds: number[] = [];
  private pool: ForwarderPool | undefined;
  private stopped = false;
  /** Called when the data plane fails at run time (a worker died); the agent replaces it to stop. */
  onFatal: (err: Error) => void = (err) => this.options.log.error({ err }, 'data plane failed');

  private constructor(native: NativeBinding, options: UdpBackendOptions) {
    this.native = native;
    this.options = options;
    this.mtu = options.underlayMtu - ENCAP_OVERHEAD_BYTES;
  }

  /** Creates the device, the socket and the workers; cleans up after itself on failure. */
  static async start(native: NativeBinding, options: UdpBackendOptions): Promise<UdpBackend> {
    const backend = new UdpBackend(native, options);
    try {
      await backend.open();
    } catch (err) {
      await backend.stop();
      throw err;
    }
    return backend;
  }

  private async open(): Promise<void> {
    const o = this.options;
    if (this.mtu < 576) {
      throw new ConfigError('--iface', o.underlayMtu,
        `the underlay MTU ${o.underlayMtu} leaves an overlay MTU of ${this.mtu}, below IPv4's minimum of 576; use an interface with MTU >= 604`);
    }
    try {
      const flags = o.workers > 1 ? this.native.UDP_REUSEPORT : 0;
      for (let w = 0; w < o.workers; w++) {
        const udp = this.native.udpOpen(o.bindAddress, o.port, flags, o.socketBufferBytes, o.socketBufferBytes);
        this.udpFds.push(udp.fd);
        if (w === 0) o.log.info({ bind: `${formatIpv4(o.bindAddress)}:${o.port}`, sockets: o.workers, rcvbuf: udp.rcvbuf, sndbuf: udp.sndbuf }, 'udp socket open');
      }
    } catch (err) {
      throw toSysError(err, `cannot open UDP port ${formatIpv4(o.bindAddress)}:${o.port}`,
        'is another flanneld or weft using the port? (Backend.Port in net-conf.json chooses it)');
    }
    const want = o.offloads;
    this.device = await TunDevice.create(this.native, {
      name: o.tunName,
      address: o.subnet.network,
      mtu: this.mtu,
      network: o.network,
      queues: o.workers,
      vnetHdr: want.tunOffload,
      txQueueLen: o.tunTxQueueLen,
    });
    o.log.info({ device: this.device.name, address: `${formatIpv4(o.subnet.network)}/32`, mtu: this.mtu, route: formatPrefix(o.network) }, 'tun device up');
    this.offloads = this.probeOffloads(this.device, want);
    o.log.info({ requested: want, inEffect: this.offloads }, 'offloads');
    const tunSlotSize = this.offloads.vnetHdr ? TUN_OFFLOAD_SLOT_BYTES : Math.ceil(Math.max(this.mtu, 1500) / 64) * 64;
    this.pool = await ForwarderPool.start({
      tunFds: this.device.fds,
      udpFds: this.udpFds,
      workers: o.workers,
      tunAddress: o.subnet.network,
      localSubnet: o.subnet,
      batchSize: o.batchSize,
      tunSlotSize,
      udpSlotSize: UDP_SLOT_BYTES,
      icmpPerSecond: o.icmpPerSecond,
      routes: this.table.snapshot(),
      offloads: this.offloads,
      busyPollMicros: o.busyPollMicros,
    }, (err) => this.onFatal(err));
    o.log.info({ workers: o.workers, batch: o.batchSize }, 'data plane running');
  }

  /** Turns on what was asked for and the kernel supports; says once what falls back. */
  private probeOffloads(device: TunDevice, want: RequestedOffloads): OffloadOptions {
    const n = this.native;
    const log = this.options.log;
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
    const groFlags = vnetHdr ? (want.coalesceTcp ? n.GRO_TCP : 0) | (uso ? n.GRO_UDP : 0) : 0;
    return { vnetHdr, udpGso, udpGro, groFlags };
  }

  async setPeer(peer: PeerLease): Promise<void> {
    checkPeers(this.options.network, this.options.subnet, [peer], ['peer']);
    if (this.table.set(peer.subnet, { address: peer.publicIp, port: peer.port })) {
      await this.publish();
    }
  }

  async deletePeer(subnet: Ipv4Prefix): Promise<boolean> {
    const removed = this.table.delete(subnet);
    if (removed) {
      await this.publish();
    }
    return removed;
  }

  /** Replaces the peer set; the workers hear of it only when it differs from the current one. */
  async replacePeers(peers: readonly PeerLease[]): Promise<void> {
    checkPeers(this.options.network, this.options.subnet, peers, peers.map(() => 'peer'));
    const key = (list: readonly PeerLease[]): string =>
      list.map((p) => `${formatPrefix(p.subnet)}=${p.publicIp}:${p.port}`).sort().join(',');
    if (key(peers) === key(this.peers())) return;
    this.table.clear();
    for (const p of peers) this.table.set(p.subnet, { address: p.publicIp, port: p.port });
    await this.publish();
  }

  peers(): PeerLease[] {
    return this.table.entries().map((e) => ({ subnet: e.prefix, publicIp: e.peer.address, port: e.peer.port }));
  }

  private async publish(): Promise<void> {
    if (this.pool !== undefined) await this.pool.setRoutes(this.table.snapshot());
  }

  counters(): Record<string, number> {
    return this.pool?.counters() ?? {};
  }

  counterBlocks(): readonly Float64Array[] {
    return this.pool?.counterBlocks() ?? [];
  }

  /** Workers first (they borrow the descriptors), then the device, then the socket. */
  async stop(): Promise<void> {
    if (this.stopped) return;
    this.stopped = true;
    if (this.pool !== undefined) await this.pool.stop();
    this.device?.close();
    for (const fd of this.udpFds.splice(0)) this.native.closeFd(fd);
  }
}
