/**
 * The packet loop of one data-plane worker. Two directions, each a batch
 * loop over a slab that the packets never leave:
 *
 *  encap (TUN -> UDP)
 *   1. read a batch of IP packets from the TUN into the TUN slab;
 *   2. per packet: IPv4?  route lookup on the destination (none: ICMP net
 *      unreachable back into the TUN); TTL (expired: ICMP time exceeded);
 *      decrement TTL in place; note slot, length and peer;
 *   3. one sendmmsg for the batch: each datagram's payload is the slot itself.
 *
 *  decap (UDP -> TUN)
 *   1. recvmmsg a batch of datagrams into the UDP slab;
 *   2. per datagram: source validation (below); validate the IPv4 header,
 *      destination inside this host's subnet, the inner source owned by the
 *      sender, TTL (expired: ICMP time exceeded back to the sender over UDP);
 *      decrement TTL in place;
 *   3. write the accepted slots to the TUN.
 *
 *  Source validation (on unless sourceValidation is false): a datagram is
 *  delivered only if its outer source address is the public IP of a known host
 *  (a route's peer: a lease or a static --peer), and
 *   - an inner source inside the cluster network must lie in a subnet that
 *     this same host owns (the route for the inner source points at it); a
 *     source in no lease, or in this host's own lease, is owned by nobody
 *     else and is dropped;
 *   - an inner source outside the cluster network (traffic a host forwards
 *     into the overlay for someone outside it, e.g. a client of a node port)
 *     is accepted from any known host, and counted; but an inner source that
 *     is a known host's public IP must be the sender's own.
 *  Each drop is a counter by reason; nothing is logged per packet.
 *
 * Per-peer counters (peer-counters.ts), unless peerCounters is null: datagrams
 * and bytes sent to each peer as the kernel took them (the send calls report
 * per packet), datagrams and bytes received from each known sender, and drops
 * by reason for the peer concerned; a few typed-array adds per batch entry.
 *
 * Contract: one Forwarder is driven by one thread. Packet bytes in a slab are
 * valid until the next batch read into that slab. Routes change only between
 * batches (setRoutes swaps a compiled snapshot). Nothing throws per packet:
 * every drop is a counter.
 */
import {
  buildIcmpError,
  decrementTtl,
  ICMP_DEST_UNREACH,
  ICMP_NET_UNREACH,
  ICMP_TIME_EXCEEDED,
  ICMP_TTL_EXCEEDED,
  ipv4Dst,
  ipv4TotalLength,
  ipv4Src,
  Ipv4Drop,
  mayQuoteInIcmpError,
  validateIpv4,
} from '../encap';
import { prefixMask, type Ipv4Prefix } from '../net/ipv4';
import { CompiledRoutes, type RouteSnapshot } from '../routing';
import type { NativeBinding } from '../native';
import { Counter } from './counters';
import { PEER_STRIDE, PeerCounter, peerBlockCapacity } from './peer-counters';
import { SEND_RESULT_FIELDS } from '../native';

/** The parts of the native addon the packet loop uses (a fake can stand in). */
export type PacketIo = Pick<NativeBinding,
  'tunReadBatch' | 'tunWriteBatch' | 'tunWriteSuper' | 'udpRecvBatch' | 'udpSendBatch' | 'udpSendVnetBatch' | 'tunWritePackets' |
  'MAX_WRITE' | 'VNET_HDR_LEN'>;

/** Which offloads the data path uses; each one can be switched off (and is, when the kernel lacks it). */
export interface OffloadOptions {
  /** The TUN was opened with a virtio-net header (reads may be TSO super-packets; writes carry a header). */
  readonly vnetHdr: boolean;
  /** Send split super-packets with UDP_SEGMENT (one system call per super-packet). */
  readonly udpGso: boolean;
  /** Send runs of equal-size packets to one peer as one UDP_SEGMENT message (needs vnetHdr and udpGso). */
  readonly packRuns?: boolean;
  /** The socket has UDP_GRO: a received message may hold many datagrams. */
  readonly udpGro: boolean;
  /** GRO_TCP | GRO_UDP: merge consecutive segments of a flow into one TUN write (needs vnetHdr). */
  readonly groFlags: number;
}

export const NO_OFFLOADS: OffloadOptions = { vnetHdr: false, udpGso: false, udpGro: false, groFlags: 0 };

/** udpSendVnetBatch's flag bits (native/src/weft.h WEFT_SEND_*), here so the loop needs no addon to be built. */
const SEND_GSO = 0x1;
const SEND_PACK_RUNS = 0x2;

/** At most this many datagrams arrive in one UDP_GRO message (the kernel's UDP_GRO_CNT_MAX). */
const DATAGRAMS_PER_MESSAGE = 64;

export interface ForwarderOptions {
  readonly tunFd: number;
  readonly udpFd: number;
  /** Where encapsulated packets leave from (its own source port per worker); default udpFd. ICMP errors answer from udpFd. */
  readonly sendFd?: number;
  /** Source address of ICMP errors this host generates (the TUN's address). */
  readonly tunAddress: number;
  /** This host's lease: decapsulated packets must be addressed inside it. */
  readonly localSubnet: Ipv4Prefix;
  /** The whole overlay network (net-conf.json's Network): inner sources inside it must be owned by their sender. */
  readonly clusterNetwork: Ipv4Prefix;
  /** Deliver only datagrams from known hosts carrying sources they own (see above); default true. */
  readonly sourceValidation?: boolean;
  /** Packets per batch call (<= native MAX_BATCH). */
  readonly batchSize: number;
  /** Bytes per TUN read slot (>= the TUN MTU). */
  readonly tunSlotSize: number;
  /** Bytes per UDP receive slot (datagrams larger than this are dropped as truncated). */
  readonly udpSlotSize: number;
  /** ICMP errors per second this worker may generate (burst = a tenth of it, at least 10); 0 = none. */
  readonly icmpPerSecond: number;
  readonly counters: Float64Array;
  /** Per-peer counters (peer-counters.ts) with room for routes.slotCount slots; null: not kept. */
  readonly peerCounters?: Float64Array | null;
  readonly routes: RouteSnapshot;
  /** Batch calls per readiness event before yielding to the event loop. */
  readonly maxBatchesPerWakeup?: number;
  readonly offloads?: OffloadOptions;
  /** Microseconds to keep polling after handling packets before sleeping (0 = never; trades CPU for latency). */
  readonly busyPollMicros?: number;
  /** Poll before sleeping for a window that adapts to the traffic (poll-window.ts); busyPollMicros > 0 wins. */
  readonly adaptivePoll?: boolean;
  /** Read one TUN packet per pass while they come one at a time (read-limit.ts); default true, ignored when polling. */
  readonly shortTunReads?: boolean;
  /**
   * The TUN's MTU. With a virtio-net header on the TUN, a datagram holding one
   * IPv4 TCP packet longer than this (a super-packet a peer's kernel fast path
   * sent whole) is written as one GSO write cut into segments of this size;
   * without it (or without the header) such a datagram is written as it is.
   */
  readonly tunMtu?: number;
}

/** The per-peer block if it has room for every slot of `routes`, else null (counting stops rather than mixing peers). */
function fits(block: Float64Array | null, routes: CompiledRoutes): Float64Array | null {
  return block !== null && peerBlockCapacity(block) >= routes.slotCount ? block : null;
}

/** Room for one ICMP error: IP header + ICMP header + quoted header with options + 8 bytes. */
const ICMP_SLOT_BYTES = 128;

export class Forwarder {
  private readonly io: PacketIo;
  private readonly opt: ForwarderOptions;
  private readonly c: Float64Array;
  /** the per-peer block given (null: not kept) */
  private peerBlock: Float64Array | null;
  /** the block in use: peerBlock, or null while a snapshot has more slots than it holds (never mixes peers) */
  private pc: Float64Array | null;
  private routes: CompiledRoutes;
  private readonly localNet: number;
  private readonly localMask: number;
  /** Above this length a whole TCP packet in one datagram is a super-packet (0: not handled). */
  private readonly superMtu: number;
  private readonly clusterNet: number;
  private readonly clusterMask: number;
  private readonly validateSources: boolean;
  private readonly maxRounds: number;
  private readonly off: OffloadOptions;
  private readonly writeCapacity: number;
  private readonly segs: Int32Array | null;
  /** udpSendVnetBatch's flags (SEND_GSO, SEND_PACK_RUNS) */
  private readonly sendFlags: number;

  // encap state
  private readonly tunSlab: Buffer;
  private readonly tunLens: Int32Array;
  /** Where each packet of the last TUN read starts (dense reads). */
  private readonly tunOffsets: Int32Array;
  private readonly sendOffsets: Int32Array;
  private readonly sendLens: Int32Array;
  private readonly sendAddrs: Uint32Array;
  private readonly sendPorts: Uint16Array;
  /** counter slot of each queued datagram's peer, and the send call's per-packet results */
  private readonly sendSlots: Int32Array;
  private readonly sendResults: Int32Array;

  // decap state
  private readonly udpSlab: Buffer;
  private readonly udpLens: Int32Array;
  private readonly srcAddrs: Uint32Array;
  private readonly srcPorts: Uint16Array;
  private readonly writeOffsets: Int32Array;
  private readonly writeLens: Int32Array;

  // generated ICMP errors: to the TUN (encap side) or back over UDP (decap side)
  private readonly icmpSlab: Buffer;
  private readonly icmpOffsets: Int32Array;
  private readonly icmpLens: Int32Array;
  private readonly icmpAddrs: Uint32Array;
  private readonly icmpPorts: Uint16Array;
  private icmpTokens: number;
  private icmpRefilledAt: number;
  private readonly icmpBurst: number;

  private readonly ioResult = new Uint32Array(6);

  constructor(io: PacketIo, options: ForwarderOptions) {
    this.io = io;
    this.opt = options;
    this.c = options.counters;
    this.routes = new CompiledRoutes(options.routes);
    this.peerBlock = options.peerCounters ?? null;
    this.pc = fits(this.peerBlock, this.routes);
    this.localMask = prefixMask(options.localSubnet.length);
    this.localNet = options.localSubnet.network;
    this.clusterMask = prefixMask(options.clusterNetwork.length);
    this.clusterNet = (options.clusterNetwork.network & this.clusterMask) >>> 0;
    this.validateSources = options.sourceValidation ?? true;
    this.maxRounds = options.maxBatchesPerWakeup ?? 8;
    this.off = options.offloads ?? NO_OFFLOADS;
    this.superMtu = this.off.vnetHdr && options.tunMtu !== undefined ? options.tunMtu : 0;
    const n = options.batchSize;
    // a full list is flushed mid-batch, so the cap only bounds one write call
    this.writeCapacity = Math.min(this.off.udpGro ? n * DATAGRAMS_PER_MESSAGE : n, io.MAX_WRITE);
    this.segs = this.off.udpGro ? new Int32Array(n) : null;
    this.sendFlags = (this.off.udpGso ? SEND_GSO : 0) | (this.off.udpGso && this.off.packRuns === true ? SEND_PACK_RUNS : 0);

    this.tunSlab = Buffer.alloc(n * options.tunSlotSize);
    this.tunLens = new Int32Array(n);
    this.tunOffsets = new Int32Array(n);
    this.sendOffsets = new Int32Array(n);
    this.sendLens = new Int32Array(n);
    this.sendAddrs = new Uint32Array(n);
    this.sendPorts = new Uint16Array(n);
    this.sendSlots = new Int32Array(n);
    this.sendResults = new Int32Array(n * SEND_RESULT_FIELDS);

    this.udpSlab = Buffer.alloc(n * options.udpSlotSize);
    this.udpLens = new Int32Array(n);
    this.srcAddrs = new Uint32Array(n);
    this.srcPorts = new Uint16Array(n);
    this.writeOffsets = new Int32Array(this.writeCapacity);
    this.writeLens = new Int32Array(this.writeCapacity);

    // ICMP errors are plain packets; in vnet mode the TUN writer adds the header itself
    this.icmpSlab = Buffer.alloc(n * ICMP_SLOT_BYTES);
    this.icmpOffsets = new Int32Array(n);
    this.icmpLens = new Int32Array(n);
    this.icmpAddrs = new Uint32Array(n);
    this.icmpPorts = new Uint16Array(n);
    this.icmpBurst = options.icmpPerSecond <= 0 ? 0 : Math.max(10, Math.floor(options.icmpPerSecond / 10));
    this.icmpTokens = this.icmpBurst;
    this.icmpRefilledAt = Date.now();
  }

  /**
   * Swaps in a new route snapshot; takes effect from the next packet. A new
   * per-peer block (larger, sent when the slots outgrew the old one) takes
   * over the old one's figures: this thread is the only writer of both.
   */
  setRoutes(snapshot: RouteSnapshot, peerCounters?: Float64Array): void {
    this.routes = new CompiledRoutes(snapshot);
    if (peerCounters !== undefined && peerCounters !== this.peerBlock) {
      const old = this.peerBlock;
      if (old !== null) peerCounters.set(old.subarray(0, Math.min(old.length, peerCounters.length)));
      this.peerBlock = peerCounters;
    }
    this.pc = fits(this.peerBlock, this.routes);
    this.c[Counter.RouteUpdates]++;
  }

  /**
   * Drains the TUN (up to maxBatchesPerWakeup batches). Returns packets read.
   * `readLimit` (default: the batch size) caps the first batch: a caller that
   * expects one packet passes 1, and no read then ends the pass by finding
   * the device empty (the readiness watcher fires again if more waited).
   */
  pumpTun(readLimit?: number): number {
    const { tunFd, batchSize, tunSlotSize } = this.opt;
    const udpFd = this.opt.sendFd ?? this.opt.udpFd;
    const io = this.io;
    const c = this.c;
    const slab = this.tunSlab;
    const lens = this.tunLens;
    const offsets = this.tunOffsets;
    const res = this.ioResult;
    const vnet = this.off.vnetHdr;
    const hdr = vnet ? io.VNET_HDR_LEN : 0;
    const pc = this.pc;
    const slots = this.sendSlots;
    let total = 0;
    const want = readLimit === undefined ? batchSize : Math.max(1, Math.min(readLimit, batchSize));
    for (let round = 0; round < this.maxRounds; round++) {
      const n = io.tunReadBatch(tunFd, slab, tunSlotSize, want, lens, res, offsets);
      c[Counter.SyscallsTunRead] += res[0] as number;
      c[Counter.BatchesTunRead]++;
      if (n === 0) break;
      total += n;
      const routes = this.routes;
      let out = 0;
      let icmp = 0;
      let bytes = 0;
      for (let i = 0; i < n; i++) {
        const slot = offsets[i] as number; // packed densely by the read
        const ip = slot + hdr; // the IP packet (after the virtio-net header in vnet mode)
        if ((lens[i] as number) < 0) {
          c[Counter.DropTunTruncated]++;
          continue;
        }
        const len = (lens[i] as number) - hdr;
        bytes += len;
        if (len < 20 || ((slab[ip] as number) >> 4) !== 4) {
          c[Counter.DropTunNotIpv4]++;
          continue;
        }
        const r = routes.lookup(ipv4Dst(slab, ip));
        if (r < 0) {
          c[Counter.DropNoRoute]++;
          if (this.queueIcmp(icmp, ICMP_DEST_UNREACH, ICMP_NET_UNREACH, slab, ip, len, 0, 0)) {
            icmp++;
            c[Counter.IcmpNetUnreachableSent]++;
          }
          continue;
        }
        if ((slab[ip + 8] as number) <= 1) {
          c[Counter.DropTtlExpiredEncap]++;
          if (pc !== null) pc[(routes.routeSlot[r] as number) * PEER_STRIDE + PeerCounter.TxDropTtlExpired]++;
          if (this.queueIcmp(icmp, ICMP_TIME_EXCEEDED, ICMP_TTL_EXCEEDED, slab, ip, len, 0, 0)) {
            icmp++;
            c[Counter.IcmpTimeExceededSent]++;
          }
          continue;
        }
        decrementTtl(slab, ip); // a super-packet's segments all inherit it
        this.sendOffsets[out] = slot;
        this.sendLens[out] = len + hdr;
        this.sendAddrs[out] = routes.peerAddress[r] as number;
        this.sendPorts[out] = routes.peerPort[r] as number;
        slots[out] = routes.routeSlot[r] as number;
        out++;
      }
      c[Counter.TunRxPackets] += n;
      c[Counter.TunRxBytes] += bytes;
      if (out > 0) {
        const per = pc === null ? null : this.sendResults;
        if (vnet) {
          io.udpSendVnetBatch(udpFd, slab, this.sendOffsets, this.sendLens, this.sendAddrs, this.sendPorts, out, this.sendFlags, res, per);
          c[Counter.UdpTxPackets] += res[4] as number;
          c[Counter.DropSplitFailed] += res[5] as number;
        } else {
          c[Counter.UdpTxPackets] += io.udpSendBatch(udpFd, slab, this.sendOffsets, this.sendLens, this.sendAddrs, this.sendPorts, out, res, per);
        }
        c[Counter.SyscallsUdpSend] += res[0] as number;
        c[Counter.UdpTxBytes] += res[3] as number;
        c[Counter.DropUdpSendFailed] += res[1] as number;
        if (per !== null && pc !== null) {
          for (let j = 0, k = 0; j < out; j++, k += SEND_RESULT_FIELDS) {
            const b = (slots[j] as number) * PEER_STRIDE;
            pc[b + PeerCounter.TxPackets] += per[k] as number;
            pc[b + PeerCounter.TxBytes] += per[k + 1] as number;
            pc[b + PeerCounter.TxDropSendFailed] += per[k + 2] as number;
          }
        }
      }
      if (icmp > 0) this.flushIcmpToTun(icmp);
      // a short batch found the device empty; a capped one leaves the rest to the watcher
      if (n < want || want < batchSize) break;
    }
    return total;
  }

  /** Drains the UDP socket (up to maxBatchesPerWakeup batches). Returns datagrams received. */
  pumpUdp(): number {
    const { udpFd, batchSize, udpSlotSize } = this.opt;
    const io = this.io;
    const c = this.c;
    const slab = this.udpSlab;
    const lens = this.udpLens;
    const segs = this.segs;
    const res = this.ioResult;
    const localMask = this.localMask;
    const localNet = this.localNet;
    const validate = this.validateSources;
    const pc = this.pc;
    let total = 0;
    for (let round = 0; round < this.maxRounds; round++) {
      const n = io.udpRecvBatch(udpFd, slab, udpSlotSize, batchSize, lens, segs, this.srcAddrs, this.srcPorts, res);
      const routes = this.routes;
      c[Counter.SyscallsUdpRecv] += res[0] as number;
      c[Counter.BatchesUdpRecv]++;
      if (n === 0) break;
      let out = 0;
      let icmp = 0;
      let datagrams = 0;
      let bytesIn = 0;
      for (let i = 0; i < n; i++) {
        const message = lens[i] as number;
        const sender = this.srcAddrs[i] as number;
        const home = routes.peerRoute(sender);
        // the sending host's per-peer counters, or -1 (unknown sender, or not kept)
        const pb = pc !== null && home >= 0 ? (routes.routeSlot[home] as number) * PEER_STRIDE : -1;
        if (message < 0) {
          c[Counter.DropTruncated]++;
          datagrams++;
          if (pb >= 0) {
            (pc as Float64Array)[pb + PeerCounter.RxPackets]++;
            (pc as Float64Array)[pb + PeerCounter.RxDropTruncated]++;
          }
          continue;
        }
        bytesIn += message;
        const unknownSender = validate && home < 0;
        const first = datagrams;
        const base = i * udpSlotSize;
        // one packet longer than the MTU filling the whole message: a super-packet sent whole (UDP_GRO reports its
        // segment size, but nothing split it), not a train of datagrams
        const whole = this.superMtu > 0 && message > this.superMtu && message >= 20 && ipv4TotalLength(slab, base) === message;
        const step = !whole && segs !== null && (segs[i] as number) > 0 ? (segs[i] as number) : Math.max(message, 1);
        for (let at = 0; at < message || (message === 0 && at === 0); at += step) {
          const off = i * udpSlotSize + at;
          const len = Math.min(step, message - at);
          datagrams++;
          if (unknownSender) {
            c[Counter.DropUnknownSender]++;
            continue;
          }
          const verdict = validateIpv4(slab, off, len);
          if (verdict !== Ipv4Drop.Ok) {
            c[Counter.DropTooShort + verdict - 1]++;
            if (pb >= 0) (pc as Float64Array)[pb + PeerCounter.RxDropTooShort + verdict - 1]++;
            continue;
          }
          if (((ipv4Dst(slab, off) & localMask) >>> 0) !== localNet) {
            c[Counter.DropNotLocalSubnet]++;
            if (pb >= 0) (pc as Float64Array)[pb + PeerCounter.RxDropNotLocalSubnet]++;
            continue;
          }
          if (validate && !this.senderOwnsSource(routes, sender, ipv4Src(slab, off))) {
            c[Counter.DropSourceNotOwned]++;
            if (pb >= 0) (pc as Float64Array)[pb + PeerCounter.RxDropSourceNotOwned]++;
            continue;
          }
          if ((slab[off + 8] as number) <= 1) {
            c[Counter.DropTtlExpiredDecap]++;
            if (pb >= 0) (pc as Float64Array)[pb + PeerCounter.RxDropTtlExpired]++;
            const back = this.queueIcmp(icmp, ICMP_TIME_EXCEEDED, ICMP_TTL_EXCEEDED, slab, off, len,
              this.srcAddrs[i] as number, this.srcPorts[i] as number);
            if (back) {
              icmp++;
              c[Counter.IcmpTimeExceededSent]++;
            }
            continue;
          }
          decrementTtl(slab, off);
          if (whole) {
            out = this.flushToTun(out); // in order: what came before it goes first
            this.writeSuper(off, len);
            continue;
          }
          if (out === this.writeCapacity) out = this.flushToTun(out);
          this.writeOffsets[out] = off;
          this.writeLens[out] = len;
          out++;
        }
        if (pb >= 0) {
          (pc as Float64Array)[pb + PeerCounter.RxPackets] += datagrams - first;
          (pc as Float64Array)[pb + PeerCounter.RxBytes] += message;
        }
      }
      total += datagrams;
      c[Counter.UdpRxPackets] += datagrams;
      c[Counter.UdpRxBytes] += bytesIn;
      if (out > 0) this.flushToTun(out);
      if (icmp > 0) this.flushIcmpToUdp(icmp);
      if (n < batchSize) break;
    }
    return total;
  }

  /**
   * Source validation's second half, for a known sender: an inner source in
   * the cluster network must be in a subnet routed to this sender; one outside
   * the network is accepted (and counted). Per packet: no allocation.
   */
  private senderOwnsSource(routes: CompiledRoutes, sender: number, src: number): boolean {
    if (((src & this.clusterMask) >>> 0) !== this.clusterNet) {
      // a host's own address is its own to send from: no host may speak as another (node IPs are often trusted)
      if (routes.isPeer(src) && src >>> 0 !== sender >>> 0) return false;
      this.c[Counter.UdpRxOutsideNetwork]++;
      return true;
    }
    const r = routes.lookup(src);
    return r >= 0 && (routes.peerAddress[r] as number) === sender >>> 0;
  }

  /** Writes the first `count` accepted packets of the UDP slab to the TUN; returns 0 (the list is empty again). */
  private flushToTun(count: number): number {
    if (count === 0) return 0;
    this.writeToTun(this.udpSlab, this.writeOffsets, this.writeLens, count, this.off.groFlags, Counter.DropTunWriteFailed);
    return 0;
  }

  /** A whole super-packet from one datagram: one GSO write, or counted as refused. */
  private writeSuper(off: number, len: number): void {
    const res = this.ioResult;
    const c = this.c;
    const written = this.io.tunWriteSuper(this.opt.tunFd, this.udpSlab, off, len, this.superMtu, res);
    c[Counter.SyscallsTunWrite] += res[0] as number;
    c[Counter.TunTxPackets] += written;
    c[Counter.TunTxBytes] += res[3] as number;
    c[Counter.UdpRxSuperPackets] += written;
    c[Counter.DropBadSuperPacket] += res[5] as number;
    c[Counter.DropTunWriteFailed] += res[1] as number;
  }

  /** One TUN write call (with a virtio-net header and coalescing in vnet mode); `failedCounter` takes refusals. */
  private writeToTun(slab: Buffer, offsets: Int32Array, lens: Int32Array, count: number, groFlags: number, failedCounter: Counter): void {
    const res = this.ioResult;
    const written = this.off.vnetHdr
      ? this.io.tunWritePackets(this.opt.tunFd, slab, offsets, lens, count, true, groFlags, res)
      : this.io.tunWriteBatch(this.opt.tunFd, slab, offsets, lens, count, res);
    this.c[Counter.SyscallsTunWrite] += res[0] as number;
    this.c[Counter.TunTxPackets] += written;
    this.c[Counter.TunTxBytes] += res[3] as number;
    this.c[failedCounter] += res[1] as number;
  }

  /**
   * Builds an ICMP error about the packet at slab[off..off+len] into ICMP slot
   * `index`, if the packet may be quoted and the rate limit allows.
   * replyAddr/replyPort are where a UDP-bound error goes (decap side).
   */
  private queueIcmp(
    index: number, type: number, code: number, slab: Buffer, off: number, len: number,
    replyAddr: number, replyPort: number,
  ): boolean {
    if (!mayQuoteInIcmpError(slab, off, len)) return false;
    // one batch can hold more packets than ICMP slots (UDP_GRO): the rest count as rate limited
    if (index >= this.icmpLens.length || !this.takeIcmpToken()) {
      this.c[Counter.IcmpRateLimited]++;
      return false;
    }
    const at = index * ICMP_SLOT_BYTES;
    const size = buildIcmpError(this.icmpSlab, at, type, code, this.opt.tunAddress, slab, off, len);
    this.icmpOffsets[index] = at;
    this.icmpLens[index] = size;
    this.icmpAddrs[index] = replyAddr;
    this.icmpPorts[index] = replyPort;
    return true;
  }

  private takeIcmpToken(): boolean {
    if (this.icmpTokens < 1) {
      const now = Date.now();
      const refill = ((now - this.icmpRefilledAt) * this.opt.icmpPerSecond) / 1000;
      if (refill >= 1) {
        this.icmpTokens = Math.min(this.icmpBurst, this.icmpTokens + refill);
        this.icmpRefilledAt = now;
      }
      if (this.icmpTokens < 1) return false;
    }
    this.icmpTokens--;
    return true;
  }

  private flushIcmpToTun(count: number): void {
    this.writeToTun(this.icmpSlab, this.icmpOffsets, this.icmpLens, count, 0, Counter.IcmpSendFailed);
  }

  private flushIcmpToUdp(count: number): void {
    const res = this.ioResult;
    const sent = this.io.udpSendBatch(this.opt.udpFd, this.icmpSlab, this.icmpOffsets, this.icmpLens,
      this.icmpAddrs, this.icmpPorts, count, res);
    this.c[Counter.SyscallsUdpSend] += res[0] as number;
    this.c[Counter.UdpTxPackets] += sent;
    this.c[Counter.UdpTxBytes] += res[3] as number;
    this.c[Counter.IcmpSendFailed] += res[1] as number;
  }
}
