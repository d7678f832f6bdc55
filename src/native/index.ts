/**
 * The native addon's surface, declared for TypeScript, and its loader.
 *
 * The addon is batch-first: one call moves many packets, packet bytes stay in
 * a caller-owned slab, offsets and lengths travel in typed arrays, results are
 * counts. Nothing here allocates per packet.
 *
 * `io` arrays (Uint32Array of length >= 6) receive, after each batch call:
 * [0] system calls made, [1] packets skipped because the kernel refused them,
 * [2] errno of the last such refusal (0 if none), [3] bytes the kernel took
 * (sends and writes), [4] datagrams sent (sends) or TUN writes made (writes),
 * [5] super-packets that could not be split (dropped).
 */
import * as path from 'node:path';
import { NativeLoadError } from '../errors';

export interface TunHandle {
  readonly fd: number;
  /** The device name the kernel gave (equals the requested one when given). */
  readonly name: string;
}

export interface UdpHandle {
  readonly fd: number;
  /** Buffer sizes the kernel actually granted (bytes, as getsockopt reports them). */
  readonly rcvbuf: number;
  readonly sndbuf: number;
}

/** Opaque readiness watcher. */
export type PollHandle = { readonly __weftPoll: unique symbol };

export interface NativeBinding {
  readonly MAX_BATCH: number;
  readonly TUN_VNET_HDR: number;
  readonly TUN_MULTI_QUEUE: number;
  readonly UDP_REUSEPORT: number;
  readonly MAX_WRITE: number;
  /** Segments one super-packet may split into (the TUN's gso_max_segs is set to it). */
  readonly GSO_MAX_SEGS: number;
  readonly VNET_HDR_LEN: number;
  readonly TUN_F_CSUM: number;
  readonly TUN_F_TSO4: number;
  readonly TUN_F_TSO6: number;
  readonly TUN_F_TSO_ECN: number;
  readonly TUN_F_USO4: number;
  readonly TUN_F_USO6: number;
  readonly GRO_TCP: number;
  readonly GRO_UDP: number;
  /** groFlags: merge without re-verifying each segment's L4 checksum (outer checksums verified by the kernel). */
  readonly GRO_TRUST_L4_CSUM: number;
  /** udpSendVnetBatch flags (native/src/weft.h). */
  readonly SEND_GSO: number;
  readonly SEND_PACK_RUNS: number;

  /** Opens or creates a TUN device (IFF_TUN|IFF_NO_PI plus flags). Non-blocking fd. */
  tunOpen(name: string, flags: number): TunHandle;
  tunSetOffload(fd: number, flags: number): void;
  /**
   * Reads up to `max` packets, each of at most `slotSize` bytes; length in
   * lens[i] (-1 when it did not fit). Without `offsets`, packet i is at
   * `slab[i*slotSize]`; with them (dense: slotSize a multiple of 64), packets
   * follow each other on 64-byte boundaries and packet i starts at offsets[i].
   * Returns the count (0 when the device is empty); `max` = 1 makes exactly
   * one read. The bytes are valid until the next read into the same slab.
   */
  tunReadBatch(fd: number, slab: Uint8Array, slotSize: number, max: number, lens: Int32Array, io: Uint32Array, offsets?: Int32Array): number;
  /**
   * Writes one IPv4 TCP super-packet `slab[offset..+len]` that came whole in
   * one datagram as a GSO write (segments of at most `mtu`) to a TUN opened
   * with a virtio-net header; its TCP checksum must be partial or right.
   * Returns 1 written, 0 refused (io[5]) or failed (io[1]).
   */
  tunWriteSuper(fd: number, slab: Uint8Array, offset: number, len: number, mtu: number, io: Uint32Array): number;
  /** The checks and virtio-net header of tunWriteSuper without the write: the header, or null when refused (may rewrite the TCP checksum to its partial form). */
  superVnetHeader(packet: Uint8Array, mtu: number): Buffer | null;
  /** Writes packets `slab[offsets[i]..+lens[i]]` for i < count. Returns how many the kernel took. */
  tunWriteBatch(fd: number, slab: Uint8Array, offsets: Int32Array, lens: Int32Array, count: number, io: Uint32Array): number;

  /** Non-blocking UDP socket bound to addr:port (host order); buffers forced to the given sizes when root. */
  udpOpen(addr: number, port: number, flags: number, rcvbuf: number, sndbuf: number): UdpHandle;
  /**
   * recvmmsg into slots of `slotSize`: lens[i] (-1 if the message did not fit),
   * source addrs[i]/ports[i]. With UDP_GRO on (and `segs` given), a message may
   * hold several datagrams of one sender back to back, each segs[i] bytes (the
   * last may be shorter); segs[i] is 0 for a single datagram. Returns the count.
   */
  udpRecvBatch(
    fd: number, slab: Uint8Array, slotSize: number, max: number,
    lens: Int32Array, segs: Int32Array | null, addrs: Uint32Array, ports: Uint16Array, io: Uint32Array,
  ): number;
  /**
   * Sends packets read from a TUN opened with a virtio-net header (each packet
   * starts with it): completes partial checksums, splits TCP/UDP super-packets
   * into wire-sized packets (one per datagram). flags: SEND_GSO sends a split
   * super-packet with UDP_SEGMENT; SEND_PACK_RUNS sends a run of equal-size
   * packets next to each other, to one peer, as one UDP_SEGMENT message (still
   * one packet per datagram); `true` means SEND_GSO. Returns datagrams sent; io[4] too, io[5] = packets that could not be split.
   * perPacket (optional, 3 * count elements): see SEND_RESULT_FIELDS.
   */
  udpSendVnetBatch(
    fd: number, slab: Uint8Array, offsets: Int32Array, lens: Int32Array,
    addrs: Uint32Array, ports: Uint16Array, count: number, flags: number | boolean, io: Uint32Array,
    perPacket?: Int32Array | null,
  ): number;
  /**
   * Writes plain IPv4 packets to a TUN. With `vnet` each write carries a
   * virtio-net header and groFlags (GRO_TCP | GRO_UDP) merge consecutive
   * segments of a flow into one write (merged packets' first headers are
   * rewritten in the slab). Returns packets written; io[4] = writes made.
   */
  tunWritePackets(
    fd: number, slab: Uint8Array, offsets: Int32Array, lens: Int32Array, count: number,
    vnet: boolean, groFlags: number, io: Uint32Array,
  ): number;
  /** Turns UDP_GRO on; throws (ENOPROTOOPT) on kernels without it. */
  udpSetGro(fd: number, on: boolean): void;
  /** Whether the kernel knows UDP_SEGMENT. */
  udpGsoSupported(fd: number): boolean;
  /**
   * A socket filter that drops datagrams with no UDP checksum (0) up to
   * `maxWhole` bytes of UDP length (default: all of them): every datagram that
   * gets through was verified by the kernel, or is longer than one underlay
   * packet carries (a fast-path peer's super-packet, checked by tunWriteSuper).
   */
  udpRejectZeroChecksum(fd: number, maxWhole?: number): void;
  /** Datagrams the kernel dropped at this socket: its buffer was full, or the filter refused them (SO_MEMINFO). */
  udpSocketDrops(fd: number): number;
  /** Spreads a SO_REUSEPORT group's datagrams over its `group` sockets by the inner packet's flow (attach to one member). */
  udpSteerByInnerFlow(fd: number, group: number): void;

  /** The split as the send path does it: wire packets, or null when the packet cannot be split. For tests and benchmarks. */
  gsoSplit(packetWithVnetHeader: Uint8Array): Buffer[] | null;
  /** The coalescing as tunWritePackets does it: each write (vnet header + packet). For tests and benchmarks. */
  groCoalesce(slab: Uint8Array, offsets: Int32Array, lens: Int32Array, count: number, flags: number): Buffer[];
  /** Completes a partial checksum in place; false when the offsets do not fit. */
  csumComplete(packet: Uint8Array, csumStart: number, csumOffset: number): boolean;
  /** The Internet checksum as the C code computes it. */
  checksum(buf: Uint8Array, off: number, len: number): number;
  /**
   * sendmmsg of `slab[offsets[i]..+lens[i]]` to addrs[i]:ports[i]. Returns how many were sent.
   * perPacket (optional, 3 * count elements): see SEND_RESULT_FIELDS.
   */
  udpSendBatch(
    fd: number, slab: Uint8Array, offsets: Int32Array, lens: Int32Array,
    addrs: Uint32Array, ports: Uint16Array, count: number, io: Uint32Array,
    perPacket?: Int32Array | null,
  ): number;

  closeFd(fd: number): void;
  /** Sends one datagram to an AF_UNIX socket path ("@name": abstract namespace): systemd's readiness notification. */
  notifySend(socketPath: string, message: string): void;
  /**
   * Opens (creating, 0600) and flock()s `path` exclusively, without waiting;
   * returns the descriptor that holds the lock (closeFd releases it). Throws
   * EWOULDBLOCK while another process holds it; the kernel releases it when
   * its holder dies.
   */
  lockFile(path: string): number;
  /**
   * Busy-waits up to maxMicros for fdA or fdB to become readable (non-blocking
   * poll in a loop): 0 or 1 for the readable one, -1 when neither was, -2 when a
   * descriptor reports an error (the watchers then surface it).
   */
  spinPoll(fdA: number, fdB: number, maxMicros: number): number;

  /**
   * Calls `callback(status, events)` on this thread's event loop whenever `fd`
   * is readable (level-triggered: called again while data remains).
   */
  pollStart(fd: number, callback: (status: number, events: number) => void): PollHandle;
  pollStop(handle: PollHandle): void;
}

let cached: NativeBinding | undefined;

/**
 * Per-packet results of udpSendBatch / udpSendVnetBatch, when a perPacket
 * array is given: for input packet i, perPacket[3i] datagrams the kernel
 * took, [3i+1] their payload bytes, [3i+2] datagrams refused or given up (a
 * split super-packet's datagrams all count for it). Packets that could not be
 * split count in io[5] only.
 */
export const SEND_RESULT_FIELDS = 3;

/** Loads build/Release (then build/Debug) of the addon; reports every path tried. */
export function loadNative(): NativeBinding {
  if (cached !== undefined) return cached;
  // dist/src/native/index.js -> repository root is three levels up
  const root = path.resolve(__dirname, '..', '..', '..');
  const candidates = [
    path.join(root, 'build', 'Release', 'weft_native.node'),
    path.join(root, 'build', 'Debug', 'weft_native.node'),
  ];
  let lastError: unknown;
  for (const candidate of candidates) {
    try {
      // eslint-disable-next-line @typescript-eslint/no-require-imports
      cached = require(candidate) as NativeBinding;
      return cached;
    } catch (err) {
      lastError = err;
    }
  }
  throw new NativeLoadError(candidates, lastError);
}
