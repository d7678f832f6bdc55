/**
 * An in-memory PacketIo: a fake TUN device and a fake UDP socket that keep the
 * native addon's contract (src/native/index.ts, native/src/tun.c, udp.c), so the
 * Forwarder can be driven without root, devices or sockets.
 *
 *   TUN: `tun.inject(...)` queues packets "from the kernel" for tunReadBatch;
 *        tunWriteBatch appends to `tun.written`.
 *   UDP: `udp.inject(...)` queues datagrams (with source addr/port) for
 *        udpRecvBatch; udpSendBatch appends to `udp.sent` (with destination).
 *
 * Recorded packets are copies: the caller's slab is reused by the next batch.
 * `refuse` makes the "kernel" reject chosen packets on write/send; they are
 * counted in io[1] (failed) with io[2] = `refuseErrno`, as the native code does.
 *
 * System calls reported in io[0], as the native loops make them:
 *   tunReadBatch  one read() per packet, plus the read that finds the queue empty
 *                 (none when `max` packets were read);
 *   tunWriteBatch one write() per packet;
 *   udpRecvBatch  one recvmmsg() per call;
 *   udpSendBatch  one sendmmsg() per run of accepted datagrams and one per refused
 *                 datagram (the kernel stops at a refusal; the loop skips it and resumes).
 * Not modelled: EINTR, EAGAIN on send (socket buffer full), read errors.
 *
 * Offload mode (virtio-net header on the TUN, UDP_GSO/UDP_GRO on the socket):
 * udpSendVnetBatch and tunWritePackets split and coalesce with the real
 * native code (gsoSplit, groCoalesce, csumComplete) — only the I/O is fake.
 * `udp.injectGro` queues one message holding several datagrams, as UDP_GRO
 * delivers them; TUN writes in vnet mode are recorded with their header.
 */
import { constants } from 'node:os';
import { loadNative, SEND_RESULT_FIELDS } from '../../src/native';
import type { PacketIo } from '../../src/workers/forwarder';

export interface Datagram {
  readonly bytes: Buffer;
  /** Source (received) or destination (sent) IPv4 address, unsigned 32-bit. */
  readonly addr: number;
  readonly port: number;
}

export class MemoryTun {
  /** Packets waiting to be read, oldest first. */
  readonly pending: Buffer[] = [];
  /** Packets written to the device, in order. */
  readonly written: Buffer[] = [];
  /** Return true to make the write of this packet fail. */
  refuse: (packet: Buffer) => boolean = () => false;
  refuseErrno: number = constants.errno.EIO;

  inject(...packets: Uint8Array[]): void {
    for (const p of packets) this.pending.push(Buffer.from(p));
  }
}

export class MemoryUdp {
  /** Messages waiting; `segment` > 0 marks a UDP_GRO message of datagrams of that size. */
  readonly pending: Array<Datagram & { readonly segment?: number }> = [];
  readonly sent: Datagram[] = [];
  refuse: (datagram: Datagram) => boolean = () => false;
  refuseErrno: number = constants.errno.EMSGSIZE;

  inject(bytes: Uint8Array, addr: number, port: number): void {
    this.pending.push({ bytes: Buffer.from(bytes), addr, port });
  }

  /** One UDP_GRO message: the datagrams back to back; all but the last must be `segment` bytes. */
  injectGro(datagrams: readonly Uint8Array[], addr: number, port: number): void {
    const segment = datagrams[0]?.length ?? 0;
    this.pending.push({ bytes: Buffer.concat(datagrams.map((d) => Buffer.from(d))), addr, port, segment });
  }
}

export class MemoryPacketIo implements PacketIo {
  readonly MAX_WRITE = loadNative().MAX_WRITE;
  readonly GSO_MAX_SEGS = loadNative().GSO_MAX_SEGS;
  readonly VNET_HDR_LEN = loadNative().VNET_HDR_LEN;
  readonly tun = new MemoryTun();
  readonly udp = new MemoryUdp();

  /** The fds the Forwarder must pass; a call with another fd throws. */
  constructor(
    readonly tunFd: number,
    readonly udpFd: number,
  ) {}

  tunReadBatch(fd: number, slab: Uint8Array, slotSize: number, max: number, lens: Int32Array, io: Uint32Array, offsets?: Int32Array): number {
    this.checkFd(fd, this.tunFd, 'tunReadBatch');
    checkSlots(slab, slotSize, max, Math.min(lens.length, offsets?.length ?? Infinity));
    if (offsets !== undefined && slotSize % 64 !== 0) throw new Error('tunReadBatch: dense reads need a slotSize that is a multiple of 64');
    let n = 0;
    let at = 0; // dense mode: packets follow each other on 64-byte boundaries, as the native read packs them
    let syscalls = 0;
    while (n < max) {
      syscalls++;
      const packet = this.tun.pending.shift();
      if (packet === undefined) break; // EAGAIN
      if (packet.length > slotSize) {
        throw new Error(`test setup: a ${packet.length}-byte packet does not fit a ${slotSize}-byte TUN slot`);
      }
      const start = offsets === undefined ? n * slotSize : at;
      slab.set(packet, start);
      if (offsets !== undefined) {
        offsets[n] = start;
        at += Math.ceil(packet.length / 64) * 64;
      }
      lens[n] = packet.length;
      n++;
    }
    report(io, syscalls, 0, 0, 0);
    return n;
  }

  tunWriteBatch(fd: number, slab: Uint8Array, offsets: Int32Array, lens: Int32Array, count: number, io: Uint32Array): number {
    this.checkFd(fd, this.tunFd, 'tunWriteBatch');
    checkSpans(slab, offsets, lens, count);
    let written = 0;
    let failed = 0;
    let bytes = 0;
    for (let i = 0; i < count; i++) {
      const packet = copyOut(slab, offsets[i] as number, lens[i] as number);
      if (this.tun.refuse(packet)) {
        failed++;
        continue;
      }
      this.tun.written.push(packet);
      bytes += packet.length;
      written++;
    }
    report(io, count, failed, failed > 0 ? this.tun.refuseErrno : 0, bytes);
    return written;
  }

  udpRecvBatch(
    fd: number, slab: Uint8Array, slotSize: number, max: number,
    lens: Int32Array, segs: Int32Array | null, addrs: Uint32Array, ports: Uint16Array, io: Uint32Array,
  ): number {
    this.checkFd(fd, this.udpFd, 'udpRecvBatch');
    checkSlots(slab, slotSize, max, Math.min(lens.length, addrs.length, ports.length, segs?.length ?? Infinity));
    let n = 0;
    while (n < max) {
      const d = this.udp.pending[0];
      if (d === undefined) break;
      if (d.segment !== undefined && segs === null) throw new Error('test setup: a GRO message for a socket without UDP_GRO');
      this.udp.pending.shift();
      // Like recvmmsg with MSG_TRUNC in msg_flags: the slot gets what fits, the length says -1.
      slab.set(d.bytes.subarray(0, slotSize), n * slotSize);
      lens[n] = d.bytes.length > slotSize ? -1 : d.bytes.length;
      if (segs !== null) segs[n] = d.segment ?? 0;
      addrs[n] = d.addr;
      ports[n] = d.port;
      n++;
    }
    report(io, 1, 0, 0, 0);
    return n;
  }

  udpSendBatch(
    fd: number, slab: Uint8Array, offsets: Int32Array, lens: Int32Array,
    addrs: Uint32Array, ports: Uint16Array, count: number, io: Uint32Array, perPacket?: Int32Array | null,
  ): number {
    this.checkFd(fd, this.udpFd, 'udpSendBatch');
    checkSpans(slab, offsets, lens, count);
    if (count > addrs.length || count > ports.length) throw new RangeError(`count ${count} exceeds the address/port arrays`);
    const per = perPacketResults(perPacket, count);
    let done = 0;
    let sent = 0;
    let failed = 0;
    let bytes = 0;
    let syscalls = 0;
    while (done < count) {
      syscalls++;
      let accepted = 0;
      for (; done < count; done++) {
        const d: Datagram = {
          bytes: copyOut(slab, offsets[done] as number, lens[done] as number),
          addr: addrs[done] as number,
          port: ports[done] as number,
        };
        if (this.udp.refuse(d)) break;
        this.udp.sent.push(d);
        bytes += d.bytes.length;
        per?.sent(done, d.bytes.length);
        accepted++;
      }
      sent += accepted;
      if (accepted === 0) {
        failed++; // this sendmmsg returned -1 for datagram `done`: skip it
        per?.failed(done);
        done++;
      }
    }
    report(io, syscalls, failed, failed > 0 ? this.udp.refuseErrno : 0, bytes);
    return sent;
  }

  /** One sendmmsg; super-packets split by the native code; GSO sends still record one datagram per segment. */
  udpSendVnetBatch(
    fd: number, slab: Uint8Array, offsets: Int32Array, lens: Int32Array,
    addrs: Uint32Array, ports: Uint16Array, count: number, _useGso: boolean, io: Uint32Array,
    perPacket?: Int32Array | null,
  ): number {
    this.checkFd(fd, this.udpFd, 'udpSendVnetBatch');
    checkSpans(slab, offsets, lens, count);
    const per = perPacketResults(perPacket, count);
    const native = loadNative();
    let sent = 0;
    let failed = 0;
    let bytes = 0;
    let malformed = 0;
    for (let i = 0; i < count; i++) {
      const packet = slab.subarray(offsets[i] as number, (offsets[i] as number) + (lens[i] as number));
      const gsoType = (packet[1] as number) & 0x7f;
      let wire: Buffer[] | null;
      if (gsoType === 0) {
        const ip = Buffer.from(packet.subarray(10));
        const needsCsum = ((packet[0] as number) & 1) !== 0;
        const csumStart = (packet[6] as number) | ((packet[7] as number) << 8);
        const csumOffset = (packet[8] as number) | ((packet[9] as number) << 8);
        wire = needsCsum && !native.csumComplete(ip, csumStart, csumOffset) ? null : [ip];
      } else {
        wire = native.gsoSplit(packet);
      }
      if (wire === null) {
        malformed++;
        continue;
      }
      for (const bytesOut of wire) {
        const d: Datagram = { bytes: bytesOut, addr: addrs[i] as number, port: ports[i] as number };
        if (this.udp.refuse(d)) {
          failed++;
          per?.failed(i);
          continue;
        }
        this.udp.sent.push(d);
        bytes += d.bytes.length;
        per?.sent(i, d.bytes.length);
        sent++;
      }
    }
    report(io, 1, failed, failed > 0 ? this.udp.refuseErrno : 0, bytes, sent, malformed);
    return sent;
  }

  /** Without vnet: tunWriteBatch. With vnet: the native coalescing decides the writes; each is recorded with its header. */
  /** The native checks and header (superVnetHeader); the write is recorded with its header, as in vnet mode. */
  tunWriteSuper(fd: number, slab: Uint8Array, offset: number, len: number, mtu: number, io: Uint32Array): number {
    this.checkFd(fd, this.tunFd, 'tunWriteSuper');
    const packet = slab.subarray(offset, offset + len);
    const hdr = loadNative().superVnetHeader(packet, mtu);
    if (hdr === null) {
      report(io, 0, 0, 0, 0, 0, 1);
      return 0;
    }
    const w = Buffer.concat([hdr, packet]);
    if (this.tun.refuse(w)) {
      report(io, 1, 1, this.tun.refuseErrno, 0, 0, 0);
      return 0;
    }
    this.tun.written.push(w);
    report(io, 1, 0, 0, len, 1, 0);
    return 1;
  }

  tunWritePackets(
    fd: number, slab: Uint8Array, offsets: Int32Array, lens: Int32Array, count: number,
    vnet: boolean, groFlags: number, io: Uint32Array,
  ): number {
    if (!vnet) return this.tunWriteBatch(fd, slab, offsets, lens, count, io);
    this.checkFd(fd, this.tunFd, 'tunWritePackets');
    checkSpans(slab, offsets, lens, count);
    const writes = loadNative().groCoalesce(slab, offsets, lens, count, groFlags);
    let written = 0;
    let failed = 0;
    let bytes = 0;
    let next = 0;
    for (const w of writes) {
      const segments = w.readUInt8(1) === 0 ? 1 : Math.ceil((w.length - 10 - w.readUInt16LE(2)) / w.readUInt16LE(4));
      next += segments;
      if (this.tun.refuse(w)) {
        failed += segments;
        continue;
      }
      this.tun.written.push(w);
      bytes += w.length - 10;
      written += segments;
    }
    if (next !== count) throw new Error(`coalescing accounted for ${next} packets of ${count}`);
    report(io, writes.length, failed, failed > 0 ? this.tun.refuseErrno : 0, bytes, writes.length, 0);
    return written;
  }

  private checkFd(got: number, want: number, call: string): void {
    if (got !== want) throw new Error(`${call} called with fd ${got}, expected ${want}`);
  }
}

function report(io: Uint32Array, syscalls: number, failed: number, lastErrno: number, bytes: number, units = 0, malformed = 0): void {
  io[0] = syscalls;
  io[1] = failed;
  io[2] = lastErrno;
  io[3] = bytes;
  io[4] = units;
  io[5] = malformed;
}

/** A copy of slab[offset, offset + len): the slab is reused after the call. */
function copyOut(slab: Uint8Array, offset: number, len: number): Buffer {
  return Buffer.from(slab.subarray(offset, offset + len));
}

/** The native glue's bounds checks for read calls: `max` slots must fit the slab and the arrays. */
function checkSlots(slab: Uint8Array, slotSize: number, max: number, arrayLength: number): void {
  if (!(slotSize > 0) || !(max >= 0) || max > arrayLength || max * slotSize > slab.length) {
    throw new RangeError(`slots do not fit: ${max} x ${slotSize} bytes in a ${slab.length}-byte slab, arrays of ${arrayLength}`);
  }
}

/** The native glue's bounds checks for write calls (spans_ok in binding.c). */
function checkSpans(slab: Uint8Array, offsets: Int32Array, lens: Int32Array, count: number): void {
  if (count > offsets.length || count > lens.length) throw new RangeError(`count ${count} exceeds the offset/length arrays`);
  for (let i = 0; i < count; i++) {
    const off = offsets[i] as number;
    const len = lens[i] as number;
    if (off < 0 || len < 0 || off + len > slab.length) {
      throw new RangeError(`packet ${i} [${off}, ${off + len}) lies outside the ${slab.length}-byte slab`);
    }
  }
}

/** The native send calls' optional per-packet results (SEND_RESULT_FIELDS per input packet), zeroed first as they do. */
function perPacketResults(perPacket: Int32Array | null | undefined, count: number) {
  if (perPacket === null || perPacket === undefined) return undefined;
  if (perPacket.length < SEND_RESULT_FIELDS * count) throw new RangeError('perPacket must hold 3 * count elements');
  perPacket.fill(0, 0, SEND_RESULT_FIELDS * count);
  return {
    sent(i: number, bytes: number): void {
      perPacket[SEND_RESULT_FIELDS * i] = (perPacket[SEND_RESULT_FIELDS * i] as number) + 1;
      perPacket[SEND_RESULT_FIELDS * i + 1] = (perPacket[SEND_RESULT_FIELDS * i + 1] as number) + bytes;
    },
    failed(i: number): void {
      perPacket[SEND_RESULT_FIELDS * i + 2] = (perPacket[SEND_RESULT_FIELDS * i + 2] as number) + 1;
    },
  };
}
