/**
 * The Forwarder's packet loop over an in-memory TUN and UDP socket.
 *
 * This host: subnet 10.244.1.0/24, TUN address 10.244.1.0. One peer:
 * 10.244.2.0/24 -> 192.168.77.2:8285. Packets are built and checked by
 * test-local code (header writer, checksum, ICMP layout), never by src/encap.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';

import { RouteTable } from '../../src/routing';
import { COUNTER_INFO, Counter, newCounterBlock } from '../../src/workers/counters';
import { Forwarder, type ForwarderOptions } from '../../src/workers/forwarder';
import { MemoryPacketIo } from './memory-io';

// ---- addresses -------------------------------------------------------------

function ip(text: string): number {
  const parts = text.split('.').map(Number);
  assert.ok(parts.length === 4 && parts.every((p) => Number.isInteger(p) && p >= 0 && p <= 255), `test bug: ${text}`);
  return ((((parts[0] as number) * 256 + (parts[1] as number)) * 256 + (parts[2] as number)) * 256) + (parts[3] as number);
}

function dotted(addr: number): string {
  return [addr >>> 24, (addr >>> 16) & 255, (addr >>> 8) & 255, addr & 255].join('.');
}

const TUN_FD = 7;
const UDP_FD = 9;
const TUN_ADDRESS = '10.244.1.0';
const PEER_SUBNET = { network: ip('10.244.2.0'), length: 24 };
const PEER = { address: ip('192.168.77.2'), port: 8285 };
const CLUSTER_NETWORK = { network: ip('10.244.0.0'), length: 16 };
const IPPROTO_ICMP = 1;
const IPPROTO_UDP = 17;

// ---- packets (test-local, independent of src/encap) ------------------------

/** One's complement sum of big-endian 16-bit words, folded to 16 bits. */
function sum16(b: Uint8Array, start: number, end: number): number {
  let sum = 0;
  for (let i = start; i < end; i += 2) sum += (b[i] as number) * 256 + (i + 1 < end ? (b[i + 1] as number) : 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

function headerLength(b: Uint8Array): number {
  return ((b[0] as number) & 0x0f) * 4;
}

/** Recomputes the IPv4 header checksum over `len` header bytes (default: IHL * 4). */
function setHeaderChecksum(b: Buffer, len = headerLength(b)): Buffer {
  b.writeUInt16BE(0, 10);
  b.writeUInt16BE(~sum16(b, 0, len) & 0xffff, 10);
  return b;
}

function headerChecksumOk(b: Uint8Array): boolean {
  return sum16(b, 0, headerLength(b)) === 0xffff;
}

/** Bytes 0, 1, 2, ... shifted by `seed`, so that every packet's payload differs. */
function pattern(length: number, seed: number): Buffer {
  const out = Buffer.alloc(length);
  for (let i = 0; i < length; i++) out[i] = (i * 7 + seed * 31 + 1) & 0xff;
  return out;
}

interface PacketSpec {
  readonly src: string;
  readonly dst: string;
  readonly ttl?: number;
  readonly protocol?: number;
  readonly id?: number;
  /** The flags + fragment offset word, e.g. 0x4000 for DF. */
  readonly flagsFragment?: number;
  /** IP options (a multiple of 4 bytes). */
  readonly options?: Uint8Array;
  /** Payload bytes, or a length for a patterned payload. */
  readonly payload?: Uint8Array | number;
}

/** An IPv4 packet with a valid header checksum. */
function packet(spec: PacketSpec): Buffer {
  const options = spec.options ?? new Uint8Array(0);
  const id = spec.id ?? 0x4d2;
  const payload = typeof spec.payload === 'object' ? spec.payload : pattern(spec.payload ?? 32, id);
  const hlen = 20 + options.length;
  const b = Buffer.alloc(hlen + payload.length);
  b[0] = 0x40 | (hlen / 4);
  b[1] = 0;
  b.writeUInt16BE(b.length, 2);
  b.writeUInt16BE(id, 4);
  b.writeUInt16BE(spec.flagsFragment ?? 0x4000, 6);
  b[8] = spec.ttl ?? 64;
  b[9] = spec.protocol ?? IPPROTO_UDP;
  b.writeUInt32BE(ip(spec.src), 12);
  b.writeUInt32BE(ip(spec.dst), 16);
  b.set(options, 20);
  b.set(payload, hlen);
  return setHeaderChecksum(b);
}

/** An ICMP message of `type` (8 header bytes, checksum not needed by the forwarder) as an IP payload. */
function icmpPayload(type: number, bodyLength = 28): Buffer {
  const m = pattern(8 + bodyLength, type);
  m[0] = type;
  m[1] = 0;
  return m;
}

/**
 * `out` is `input` forwarded: same length, TTL one lower, a valid header
 * checksum, and every other byte identical.
 */
function assertForwarded(out: Buffer | undefined, input: Buffer): void {
  assert.ok(out !== undefined, 'no packet came out');
  assert.equal(out.length, input.length, 'length');
  assert.equal(out[8], (input[8] as number) - 1, 'TTL must be one lower');
  assert.ok(headerChecksumOk(out), `header checksum of the forwarded packet is invalid: ${out.subarray(0, 20).toString('hex')}`);
  const a = Buffer.from(out);
  const b = Buffer.from(input);
  for (const at of [8, 10, 11]) {
    a[at] = 0;
    b[at] = 0;
  }
  assert.deepEqual(a, b, 'bytes other than TTL and checksum must be unchanged');
}

interface IcmpErrorSpec {
  readonly type: number;
  readonly code: number;
  readonly src: string;
  readonly dst: string;
  /** The original packet as it was received: the error must quote its header + 8 bytes. */
  readonly about: Buffer;
}

/** `out` is a well-formed ICMP error (RFC 792) as specified. */
function assertIcmpError(out: Buffer | undefined, spec: IcmpErrorSpec): void {
  assert.ok(out !== undefined, 'no ICMP error came out');
  const quote = spec.about.subarray(0, Math.min(spec.about.length, headerLength(spec.about) + 8));
  assert.equal(out[0], 0x45, 'IPv4, IHL 5');
  assert.equal(out.readUInt16BE(2), out.length, 'total length field');
  assert.equal(out.length, 20 + 8 + quote.length, 'IP header + ICMP header + quote');
  assert.equal(out[8], 64, 'TTL of a packet weft originates');
  assert.equal(out[9], IPPROTO_ICMP, 'protocol');
  assert.equal(out.readUInt16BE(6) & 0x1fff, 0, 'not a fragment');
  assert.equal(dotted(out.readUInt32BE(12)), spec.src, 'source');
  assert.equal(dotted(out.readUInt32BE(16)), spec.dst, 'destination');
  assert.ok(headerChecksumOk(out), 'IP header checksum');
  assert.equal(out[20], spec.type, 'ICMP type');
  assert.equal(out[21], spec.code, 'ICMP code');
  assert.equal(sum16(out, 20, out.length), 0xffff, 'ICMP checksum');
  assert.deepEqual([...out.subarray(24, 28)], [0, 0, 0, 0], 'unused ICMP word');
  assert.deepEqual(out.subarray(28), quote, 'quoted header + 8 bytes');
}

// ---- counters ---------------------------------------------------------------

/** Call-count counters, checked only by the test that is about them. */
const PLUMBING = new Set<number>([
  Counter.SyscallsTunRead, Counter.SyscallsUdpSend, Counter.SyscallsUdpRecv, Counter.SyscallsTunWrite,
  Counter.BatchesTunRead, Counter.BatchesUdpRecv, Counter.RouteUpdates,
]);

function counterLabel(i: number): string {
  const info = COUNTER_INFO[i];
  assert.ok(info !== undefined, `no COUNTER_INFO for counter ${i}`);
  return info.name;
}

it('counter names are unique (sumCounters keys by name)', () => {
  const names = COUNTER_INFO.map((x) => x.name);
  assert.equal(new Set(names).size, names.length);
  assert.equal(names.length, Counter.Count);
});

/** Asserts that exactly these traffic and drop counters are non-zero, with these values. */
function expectCounters(c: Float64Array, expected: Readonly<Record<string, number>>): void {
  const actual: Record<string, number> = {};
  for (let i = 0; i < Counter.Count; i++) {
    if (!PLUMBING.has(i) && c[i] !== 0) actual[counterLabel(i)] = c[i] as number;
  }
  assert.deepEqual(actual, expected);
}

function sumLengths(packets: readonly Buffer[]): number {
  return packets.reduce((total, p) => total + p.length, 0);
}

// ---- set-up -----------------------------------------------------------------

function routes(...entries: Array<[string, number, string, number]>): RouteTable {
  const table = new RouteTable();
  for (const [network, length, address, port] of entries) table.set({ network: ip(network), length }, { address: ip(address), port });
  return table;
}

function setup(options: Partial<ForwarderOptions> = {}, table = routes(['10.244.2.0', 24, '192.168.77.2', 8285])) {
  const io = new MemoryPacketIo(TUN_FD, UDP_FD);
  const counters = newCounterBlock();
  const fwd = new Forwarder(io, {
    tunFd: TUN_FD,
    udpFd: UDP_FD,
    tunAddress: ip(TUN_ADDRESS),
    localSubnet: { network: ip('10.244.1.0'), length: 24 },
    clusterNetwork: CLUSTER_NETWORK,
    batchSize: 8,
    tunSlotSize: 1536,
    udpSlotSize: 1536,
    icmpPerSecond: 1000,
    counters,
    routes: table.snapshot(),
    ...options,
  });
  return { io, counters, fwd, table };
}

// ---- encap: TUN -> UDP ------------------------------------------------------

describe('encap (TUN -> UDP)', () => {
  it('sends a packet for a peer subnet as exactly one datagram to the peer, changed only in TTL and checksum', () => {
    const { io, counters, fwd } = setup();
    const input = packet({ src: '10.244.1.7', dst: '10.244.2.5', ttl: 64, id: 0x1234, payload: 100 });
    io.tun.inject(input);

    assert.equal(fwd.pumpTun(), 1);

    assert.equal(io.udp.sent.length, 1);
    const d = io.udp.sent[0];
    assert.equal(dotted(d?.addr ?? 0), '192.168.77.2');
    assert.equal(d?.port, 8285);
    assertForwarded(d?.bytes, input);
    assert.equal(io.tun.written.length, 0);
    assert.equal(io.tun.pending.length, 0);
    expectCounters(counters, {
      tun_rx_packets: 1, tun_rx_bytes: 120, udp_tx_packets: 1, udp_tx_bytes: 120,
    });
  });

  it('keeps IP options intact and fixes the checksum over the whole header', () => {
    const { io, fwd } = setup();
    // record route option (type 7, length 7, pointer 4, one empty slot) + end of list
    const input = packet({ src: '10.244.1.7', dst: '10.244.2.5', ttl: 17, options: Uint8Array.from([7, 7, 4, 0, 0, 0, 0, 0]) });
    io.tun.inject(input);
    fwd.pumpTun();
    assert.equal(io.udp.sent.length, 1);
    assertForwarded(io.udp.sent[0]?.bytes, input);
  });

  it('sends a run longer than the batch size in order, every packet exactly once', () => {
    const { io, counters, fwd } = setup({ batchSize: 8 });
    const inputs: Buffer[] = [];
    for (let i = 0; i < 21; i++) {
      inputs.push(packet({ src: '10.244.1.7', dst: `10.244.2.${i + 1}`, id: i, ttl: 10 + i, payload: 20 + i * 13 }));
    }
    io.tun.inject(...inputs);

    assert.equal(fwd.pumpTun(), 21);

    assert.equal(io.udp.sent.length, 21);
    io.udp.sent.forEach((d, i) => {
      assertForwarded(d.bytes, inputs[i] as Buffer);
      assert.equal(d.addr, PEER.address);
      assert.equal(d.port, PEER.port);
    });
    const bytes = sumLengths(inputs);
    expectCounters(counters, { tun_rx_packets: 21, tun_rx_bytes: bytes, udp_tx_packets: 21, udp_tx_bytes: bytes });
  });

  it('counts system calls and batch calls as the native layer reports them', () => {
    const { io, counters, fwd } = setup({ batchSize: 8 });
    for (let i = 0; i < 20; i++) io.tun.inject(packet({ src: '10.244.1.7', dst: '10.244.2.9', id: i }));
    fwd.pumpTun();
    // reads: 8 + 8 + (4 and the empty read); the short third batch ends the loop
    assert.equal(counters[Counter.BatchesTunRead], 3);
    assert.equal(counters[Counter.SyscallsTunRead], 21);
    assert.equal(counters[Counter.SyscallsUdpSend], 3, 'one sendmmsg per batch');
    assert.equal(counters[Counter.SyscallsTunWrite], 0);

    fwd.pumpTun(); // nothing waiting: one batch call, one read that finds nothing
    assert.equal(counters[Counter.BatchesTunRead], 4);
    assert.equal(counters[Counter.SyscallsTunRead], 22);
    assert.equal(counters[Counter.SyscallsUdpSend], 3, 'no send for an empty batch');
  });

  it('with a read limit of 1 reads one packet in one read (no empty read) and leaves the rest to the next pass', () => {
    const { io, counters, fwd } = setup({ batchSize: 8 });
    const inputs = [0, 1, 2].map((i) => packet({ src: '10.244.1.7', dst: '10.244.2.5', id: 300 + i, payload: 40 + i * 500 }));
    io.tun.inject(...inputs);

    assert.equal(fwd.pumpTun(1), 1);
    assert.equal(counters[Counter.SyscallsTunRead], 1, 'one read, none that finds the device empty');
    assert.equal(io.tun.pending.length, 2);
    assert.equal(fwd.pumpTun(), 2, 'a full pass drains the rest');
    assert.equal(counters[Counter.SyscallsTunRead], 4, '1 + (2 and the empty read)');
    assert.equal(io.udp.sent.length, 3);
    io.udp.sent.forEach((d, i) => assertForwarded(d.bytes, inputs[i] as Buffer));
  });

  it('reads at most maxBatchesPerWakeup batches per pump and leaves the rest queued', () => {
    const { io, fwd } = setup({ batchSize: 4, maxBatchesPerWakeup: 2 });
    const inputs: Buffer[] = [];
    for (let i = 0; i < 10; i++) inputs.push(packet({ src: '10.244.1.7', dst: '10.244.2.5', id: 100 + i }));
    io.tun.inject(...inputs);

    assert.equal(fwd.pumpTun(), 8);
    assert.equal(io.tun.pending.length, 2);
    assert.equal(fwd.pumpTun(), 2);
    assert.equal(fwd.pumpTun(), 0);
    assert.deepEqual(io.udp.sent.map((d) => d.bytes.readUInt16BE(4)), inputs.map((p) => p.readUInt16BE(4)));
  });

  it('drops what is not IPv4 without an ICMP error', () => {
    const { io, counters, fwd } = setup();
    const v6 = Buffer.alloc(60);
    v6[0] = 0x60;
    const runt = packet({ src: '10.244.1.7', dst: '10.244.2.5' }).subarray(0, 19);
    io.tun.inject(v6, runt);
    assert.equal(fwd.pumpTun(), 2);
    assert.equal(io.udp.sent.length, 0);
    assert.equal(io.tun.written.length, 0);
    expectCounters(counters, { tun_rx_packets: 2, tun_rx_bytes: 79, drop_not_ipv4: 2 });
  });
});

describe('encap: no route', () => {
  it('answers a packet for an unrouted destination with ICMP net unreachable into the TUN', () => {
    const { io, counters, fwd } = setup();
    const input = packet({ src: '10.244.1.7', dst: '10.244.50.1', payload: 30 });
    io.tun.inject(input);

    assert.equal(fwd.pumpTun(), 1);

    assert.equal(io.udp.sent.length, 0);
    assert.equal(io.tun.written.length, 1);
    assertIcmpError(io.tun.written[0], { type: 3, code: 0, src: TUN_ADDRESS, dst: '10.244.1.7', about: input });
    expectCounters(counters, {
      tun_rx_packets: 1, tun_rx_bytes: 50, drop_no_route: 1, icmp_net_unreachable_sent: 1,
      tun_tx_packets: 1, tun_tx_bytes: 56,
    });
  });

  it('quotes the whole header when it has options, and the whole packet when it is shorter than header + 8', () => {
    const { io, fwd } = setup();
    const withOptions = packet({ src: '10.244.1.7', dst: '10.9.0.1', options: Uint8Array.from([1, 1, 1, 0]), payload: 40 });
    const tiny = packet({ src: '10.244.1.8', dst: '10.9.0.1', payload: 3 });
    io.tun.inject(withOptions, tiny);
    fwd.pumpTun();
    assert.equal(io.tun.written.length, 2);
    assertIcmpError(io.tun.written[0], { type: 3, code: 0, src: TUN_ADDRESS, dst: '10.244.1.7', about: withOptions });
    assert.equal(io.tun.written[0]?.length, 20 + 8 + 24 + 8);
    assertIcmpError(io.tun.written[1], { type: 3, code: 0, src: TUN_ADDRESS, dst: '10.244.1.8', about: tiny });
    assert.equal(io.tun.written[1]?.length, 20 + 8 + 23);
  });

  it('sends no ICMP error about an ICMP error or a non-first fragment, but counts every drop', () => {
    const { io, counters, fwd } = setup();
    const unreachable = packet({ src: '10.244.1.7', dst: '10.244.50.1', protocol: IPPROTO_ICMP, payload: icmpPayload(3) });
    const timeExceeded = packet({ src: '10.244.1.7', dst: '10.244.50.1', protocol: IPPROTO_ICMP, payload: icmpPayload(11) });
    const laterFragment = packet({ src: '10.244.1.7', dst: '10.244.50.1', flagsFragment: 0x2000 | 185 });
    const lastFragment = packet({ src: '10.244.1.7', dst: '10.244.50.1', flagsFragment: 0x0001 });
    // the same kinds of packet that do get an answer:
    const echo = packet({ src: '10.244.1.7', dst: '10.244.50.1', protocol: IPPROTO_ICMP, payload: icmpPayload(8) });
    const firstFragment = packet({ src: '10.244.1.9', dst: '10.244.50.1', flagsFragment: 0x2000 });
    io.tun.inject(unreachable, timeExceeded, laterFragment, lastFragment, echo, firstFragment);

    fwd.pumpTun();

    assert.equal(io.udp.sent.length, 0);
    assert.equal(io.tun.written.length, 2);
    assertIcmpError(io.tun.written[0], { type: 3, code: 0, src: TUN_ADDRESS, dst: '10.244.1.7', about: echo });
    assertIcmpError(io.tun.written[1], { type: 3, code: 0, src: TUN_ADDRESS, dst: '10.244.1.9', about: firstFragment });
    assert.equal(counters[Counter.DropNoRoute], 6);
    assert.equal(counters[Counter.IcmpNetUnreachableSent], 2);
    assert.equal(counters[Counter.IcmpRateLimited], 0);
  });
});

describe('encap: TTL', () => {
  it('answers TTL 1 with ICMP time exceeded into the TUN and sends nothing', () => {
    const { io, counters, fwd } = setup();
    const input = packet({ src: '10.244.1.7', dst: '10.244.2.5', ttl: 1, payload: 12 });
    io.tun.inject(input);
    fwd.pumpTun();
    assert.equal(io.udp.sent.length, 0);
    assert.equal(io.tun.written.length, 1);
    assertIcmpError(io.tun.written[0], { type: 11, code: 0, src: TUN_ADDRESS, dst: '10.244.1.7', about: input });
    expectCounters(counters, {
      tun_rx_packets: 1, tun_rx_bytes: 32, drop_ttl_expired_encap: 1, icmp_time_exceeded_sent: 1,
      tun_tx_packets: 1, tun_tx_bytes: 56,
    });
  });

  it('drops TTL 0 the same way', () => {
    const { io, counters, fwd } = setup();
    io.tun.inject(packet({ src: '10.244.1.7', dst: '10.244.2.5', ttl: 0 }));
    fwd.pumpTun();
    assert.equal(io.udp.sent.length, 0);
    assert.equal(io.tun.written[0]?.[20], 11);
    assert.equal(counters[Counter.DropTtlExpiredEncap], 1);
  });

  it('sends TTL 2 with TTL 1', () => {
    const { io, counters, fwd } = setup();
    const input = packet({ src: '10.244.1.7', dst: '10.244.2.5', ttl: 2 });
    io.tun.inject(input);
    fwd.pumpTun();
    assert.equal(io.udp.sent.length, 1);
    assert.equal(io.udp.sent[0]?.bytes[8], 1);
    assertForwarded(io.udp.sent[0]?.bytes, input);
    assert.equal(io.tun.written.length, 0);
    assert.equal(counters[Counter.DropTtlExpiredEncap], 0);
  });
});

// ---- decap: UDP -> TUN ------------------------------------------------------

/** A valid packet from the peer's pod to this host's pod. */
function inbound(id = 1, payload: number | Uint8Array = 40, ttl = 63): Buffer {
  return packet({ src: '10.244.2.5', dst: '10.244.1.7', id, ttl, payload });
}

/** A copy of `p` changed by `edit`, with the checksum recomputed over 20 bytes. */
function edited(p: Buffer, edit: (b: Buffer) => void): Buffer {
  const b = Buffer.from(p);
  edit(b);
  return setHeaderChecksum(b, 20);
}

const UDP_SLOT = 512;

interface Malformed {
  readonly what: string;
  readonly counter: string;
  readonly datagram: Buffer;
  /** Bytes it adds to udp_rx_bytes (a truncated datagram's length is not known). */
  readonly countedBytes: number;
}

function malformedCases(): Malformed[] {
  const ok = inbound(9);
  const cases: Array<Omit<Malformed, 'countedBytes'>> = [
    { what: 'shorter than an IPv4 header', counter: 'drop_too_short', datagram: ok.subarray(0, 19) },
    { what: 'version 6', counter: 'drop_bad_version', datagram: edited(ok, (b) => { b[0] = 0x65; }) },
    { what: 'IHL 4 (below the minimum)', counter: 'drop_bad_header_length', datagram: edited(ok, (b) => { b[0] = 0x44; }) },
    {
      what: 'IHL 15 (header longer than the datagram)', counter: 'drop_bad_header_length',
      datagram: edited(inbound(9, 20), (b) => { b[0] = 0x4f; }),
    },
    {
      what: 'total length above the datagram length', counter: 'drop_bad_total_length',
      datagram: edited(ok, (b) => { b.writeUInt16BE(b.length + 4, 2); }),
    },
    {
      what: 'bytes after the total length', counter: 'drop_bad_total_length',
      datagram: Buffer.concat([ok, Buffer.from([0, 0, 0, 0])]),
    },
    {
      what: 'a wrong header checksum', counter: 'drop_bad_checksum',
      datagram: (() => { const b = Buffer.from(ok); b[11] = (b[11] as number) ^ 0x01; return b; })(),
    },
    {
      what: 'a destination outside 10.244.1.0/24', counter: 'drop_not_local_subnet',
      datagram: packet({ src: '10.244.2.5', dst: '10.244.2.7' }),
    },
    {
      what: 'a destination just below 10.244.1.0/24', counter: 'drop_not_local_subnet',
      datagram: packet({ src: '10.244.2.5', dst: '10.244.0.255' }),
    },
    {
      what: `larger than the ${UDP_SLOT}-byte receive slot`, counter: 'drop_truncated',
      datagram: inbound(9, UDP_SLOT),
    },
  ];
  return cases.map((c) => ({ ...c, countedBytes: c.counter === 'drop_truncated' ? 0 : c.datagram.length }));
}

describe('decap (UDP -> TUN)', () => {
  it('writes a valid datagram for a local address to the TUN, changed only in TTL and checksum', () => {
    const { io, counters, fwd } = setup();
    const input = inbound(0x777, 64, 60);
    io.udp.inject(input, PEER.address, PEER.port);

    assert.equal(fwd.pumpUdp(), 1);

    assert.equal(io.tun.written.length, 1);
    assertForwarded(io.tun.written[0], input);
    assert.equal(io.udp.sent.length, 0);
    expectCounters(counters, { udp_rx_packets: 1, udp_rx_bytes: 84, tun_tx_packets: 1, tun_tx_bytes: 84 });
  });

  for (const bad of malformedCases()) {
    it(`drops a datagram with ${bad.what} under ${bad.counter}, and the next one still goes through`, () => {
      const { io, counters, fwd } = setup({ udpSlotSize: UDP_SLOT });
      const good = inbound(2);
      io.udp.inject(bad.datagram, PEER.address, PEER.port);
      io.udp.inject(good, PEER.address, PEER.port);

      assert.equal(fwd.pumpUdp(), 2);

      assert.equal(io.tun.written.length, 1, 'only the valid datagram is written');
      assertForwarded(io.tun.written[0], good);
      assert.equal(io.udp.sent.length, 0);
      expectCounters(counters, {
        udp_rx_packets: 2, udp_rx_bytes: bad.countedBytes + good.length,
        tun_tx_packets: 1, tun_tx_bytes: good.length,
        [bad.counter]: 1,
      });
    });
  }

  it('counts every malformed datagram of one batch under its own counter, once', () => {
    const cases = malformedCases();
    const { io, counters, fwd } = setup({ udpSlotSize: UDP_SLOT, batchSize: 16 });
    for (const c of cases) io.udp.inject(c.datagram, PEER.address, PEER.port);
    const good = inbound(3);
    io.udp.inject(good, PEER.address, PEER.port);

    assert.equal(fwd.pumpUdp(), cases.length + 1);

    assert.equal(io.tun.written.length, 1);
    assertForwarded(io.tun.written[0], good);
    expectCounters(counters, {
      udp_rx_packets: 11,
      udp_rx_bytes: cases.reduce((t, c) => t + c.countedBytes, 0) + good.length,
      tun_tx_packets: 1, tun_tx_bytes: good.length,
      drop_too_short: 1, drop_bad_version: 1, drop_bad_header_length: 2, drop_bad_total_length: 2,
      drop_bad_checksum: 1, drop_not_local_subnet: 2, drop_truncated: 1,
    });
  });

  it('answers TTL 1 with ICMP time exceeded sent back over UDP to the sender, and writes nothing', () => {
    const { io, counters, fwd } = setup();
    const input = inbound(5, 40, 1);
    io.udp.inject(input, ip('192.168.77.2'), 40123);

    fwd.pumpUdp();

    assert.equal(io.tun.written.length, 0);
    assert.equal(io.udp.sent.length, 1);
    const d = io.udp.sent[0];
    assert.equal(dotted(d?.addr ?? 0), '192.168.77.2');
    assert.equal(d?.port, 40123, 'back to the port the datagram came from');
    assertIcmpError(d?.bytes, { type: 11, code: 0, src: TUN_ADDRESS, dst: '10.244.2.5', about: input });
    expectCounters(counters, {
      udp_rx_packets: 1, udp_rx_bytes: 60, drop_ttl_expired_decap: 1, icmp_time_exceeded_sent: 1,
      udp_tx_packets: 1, udp_tx_bytes: 56,
    });
  });

  it('delivers TTL 2 with TTL 1', () => {
    const { io, fwd } = setup();
    const input = inbound(6, 40, 2);
    io.udp.inject(input, PEER.address, PEER.port);
    fwd.pumpUdp();
    assert.equal(io.tun.written[0]?.[8], 1);
    assertForwarded(io.tun.written[0], input);
  });
});

// ---- routes -------------------------------------------------------------------

describe('setRoutes', () => {
  it('a new snapshot takes effect on the next pump; deleting the route makes the destination unreachable again', () => {
    const { io, counters, fwd, table } = setup();
    const toNew = (id: number): Buffer => packet({ src: '10.244.1.7', dst: '10.244.3.9', id });
    const toOld = (id: number): Buffer => packet({ src: '10.244.1.7', dst: '10.244.2.9', id });

    io.tun.inject(toNew(1));
    fwd.pumpTun();
    assert.equal(io.udp.sent.length, 0);
    assert.equal(io.tun.written[0]?.[20], 3, 'net unreachable before the route exists');

    table.set({ network: ip('10.244.3.0'), length: 24 }, { address: ip('192.168.77.3'), port: 8300 });
    io.tun.inject(toNew(2)); // queued before the swap, read after it
    fwd.setRoutes(table.snapshot());
    io.tun.inject(toOld(3));
    fwd.pumpTun();
    assert.deepEqual(io.udp.sent.map((d) => `${dotted(d.addr)}:${d.port} id ${d.bytes.readUInt16BE(4)}`), [
      '192.168.77.3:8300 id 2',
      '192.168.77.2:8285 id 3',
    ]);
    assert.equal(counters[Counter.RouteUpdates], 1);

    table.delete({ network: ip('10.244.3.0'), length: 24 });
    fwd.setRoutes(table.snapshot());
    io.tun.inject(toNew(4), toOld(5));
    fwd.pumpTun();
    assert.equal(io.udp.sent.length, 3);
    assert.equal(io.udp.sent[2]?.bytes.readUInt16BE(4), 5, 'the remaining route still works');
    assert.equal(io.tun.written.length, 2);
    assertIcmpError(io.tun.written[1], { type: 3, code: 0, src: TUN_ADDRESS, dst: '10.244.1.7', about: toNew(4) });
    assert.equal(counters[Counter.DropNoRoute], 2);
    assert.equal(counters[Counter.RouteUpdates], 2);
  });

  it('moving a subnet to another peer redirects its traffic', () => {
    const { io, fwd, table } = setup();
    table.set(PEER_SUBNET, { address: ip('192.168.77.20'), port: 9000 });
    fwd.setRoutes(table.snapshot());
    io.tun.inject(packet({ src: '10.244.1.7', dst: '10.244.2.5' }));
    fwd.pumpTun();
    assert.equal(io.udp.sent.length, 1);
    assert.equal(dotted(io.udp.sent[0]?.addr ?? 0), '192.168.77.20');
    assert.equal(io.udp.sent[0]?.port, 9000);
  });
});

// ---- ICMP rate limit --------------------------------------------------------

describe('ICMP rate limit', () => {
  const unroutable = (i: number): Buffer => packet({ src: '10.244.1.7', dst: '10.244.50.1', id: i });

  it('with icmpPerSecond 10, a burst of 100 unroutable packets gets 10 errors; the rest are counted as rate limited', (t) => {
    let now = 1_700_000_000_000;
    t.mock.method(Date, 'now', () => now);
    const { io, counters, fwd } = setup({ icmpPerSecond: 10, batchSize: 32 });
    for (let i = 0; i < 100; i++) io.tun.inject(unroutable(i));

    assert.equal(fwd.pumpTun(), 100);

    assert.equal(io.tun.written.length, 10, 'burst = max(10, icmpPerSecond / 10)');
    assert.deepEqual(io.tun.written.map((p) => p.readUInt16BE(28 + 4)), [0, 1, 2, 3, 4, 5, 6, 7, 8, 9],
      'the first ten packets are the ones answered');
    expectCounters(counters, {
      tun_rx_packets: 100, tun_rx_bytes: 5200, drop_no_route: 100,
      icmp_net_unreachable_sent: 10, icmp_rate_limited: 90, tun_tx_packets: 10, tun_tx_bytes: 560,
    });

    now += 50; // half a token: still nothing
    io.tun.inject(unroutable(100), unroutable(101));
    fwd.pumpTun();
    assert.equal(io.tun.written.length, 10);
    assert.equal(counters[Counter.IcmpRateLimited], 92);

    now += 950; // a second after the burst: ten tokens again, no more
    for (let i = 0; i < 15; i++) io.tun.inject(unroutable(200 + i));
    fwd.pumpTun();
    assert.equal(io.tun.written.length, 20);
    assert.equal(counters[Counter.IcmpNetUnreachableSent], 20);
    assert.equal(counters[Counter.IcmpRateLimited], 97);
  });

  it('the burst is a tenth of icmpPerSecond when that is more than 10', (t) => {
    t.mock.method(Date, 'now', () => 1_700_000_000_000);
    const { io, counters, fwd } = setup({ icmpPerSecond: 500, batchSize: 32 });
    for (let i = 0; i < 100; i++) io.tun.inject(unroutable(i));
    fwd.pumpTun();
    assert.equal(io.tun.written.length, 50);
    assert.equal(counters[Counter.IcmpRateLimited], 50);
  });

  it('shares one budget between the TUN side and the UDP side', (t) => {
    t.mock.method(Date, 'now', () => 1_700_000_000_000);
    const { io, counters, fwd } = setup({ icmpPerSecond: 10, batchSize: 32 });
    for (let i = 0; i < 7; i++) io.tun.inject(unroutable(i));
    fwd.pumpTun();
    for (let i = 0; i < 5; i++) io.udp.inject(inbound(i, 20, 1), PEER.address, PEER.port);
    fwd.pumpUdp();
    assert.equal(io.tun.written.length, 7);
    assert.equal(io.udp.sent.length, 3);
    assert.equal(counters[Counter.IcmpRateLimited], 2);
  });
});

// ---- refusals ------------------------------------------------------------------

describe('the kernel refuses a packet', () => {
  it('a refused datagram is counted as drop_send_failed and the others are still sent', () => {
    const { io, counters, fwd } = setup();
    io.udp.refuse = (d) => dotted(d.bytes.readUInt32BE(16)) === '10.244.2.6';
    const inputs = [5, 6, 7].map((host) => packet({ src: '10.244.1.7', dst: `10.244.2.${host}`, payload: host }));
    io.tun.inject(...inputs);

    fwd.pumpTun();

    assert.deepEqual(io.udp.sent.map((d) => dotted(d.bytes.readUInt32BE(16))), ['10.244.2.5', '10.244.2.7']);
    assertForwarded(io.udp.sent[1]?.bytes, inputs[2] as Buffer);
    expectCounters(counters, {
      tun_rx_packets: 3, tun_rx_bytes: 78, udp_tx_packets: 2, udp_tx_bytes: 52, drop_send_failed: 1,
    });
  });

  it('a refused TUN write is counted as drop_tun_write_failed and the others are still written', () => {
    const { io, counters, fwd } = setup();
    io.tun.refuse = (p) => p.readUInt16BE(4) === 2;
    const inputs = [1, 2, 3].map((id) => inbound(id, 10));
    for (const p of inputs) io.udp.inject(p, PEER.address, PEER.port);

    fwd.pumpUdp();

    assert.deepEqual(io.tun.written.map((p) => p.readUInt16BE(4)), [1, 3]);
    expectCounters(counters, {
      udp_rx_packets: 3, udp_rx_bytes: 90, tun_tx_packets: 2, tun_tx_bytes: 60, drop_tun_write_failed: 1,
    });
  });
});

describe('offload mode (UDP_GRO messages, virtio-net TUN writes)', () => {
  const GRO = { vnetHdr: true, udpGso: true, udpGro: true, groFlags: 1 };

  it('a GRO message of more expiring datagrams than ICMP slots does not break the batch', () => {
    // batch 4: 4 ICMP slots, but one message brings 20 datagrams with TTL 1
    const { io, counters, fwd } = setup({ batchSize: 4, udpSlotSize: 65536, offloads: GRO });
    const datagrams = Array.from({ length: 20 }, (_, i) => inbound(i + 1, 40, 1));
    io.udp.injectGro(datagrams, ip('192.168.77.2'), 8285);
    assert.equal(fwd.pumpUdp(), 20);
    assert.equal(io.udp.sent.length, 4, 'one ICMP time exceeded per ICMP slot');
    expectCounters(counters, {
      udp_rx_packets: 20, udp_rx_bytes: sumLengths(datagrams), drop_ttl_expired_decap: 20,
      icmp_time_exceeded_sent: 4, icmp_rate_limited: 16, udp_tx_packets: 4, udp_tx_bytes: sumLengths(io.udp.sent.map((d) => d.bytes)),
    });
  });

  it('coalesces nothing that is not a TCP segment and writes each datagram of a GRO message with a virtio-net header', () => {
    const { io, counters, fwd } = setup({ batchSize: 4, udpSlotSize: 65536, offloads: GRO });
    const datagrams = Array.from({ length: 6 }, (_, i) => inbound(i + 1, 40, 63));
    io.udp.injectGro(datagrams, ip('192.168.77.2'), 8285);
    assert.equal(fwd.pumpUdp(), 6);
    assert.equal(io.tun.written.length, 6);
    for (const [i, w] of io.tun.written.entries()) {
      assert.deepEqual([...w.subarray(0, 10)], [0, 0, 0, 0, 0, 0, 0, 0, 0, 0], 'a zero virtio-net header');
      assertForwarded(w.subarray(10), datagrams[i] as Buffer);
    }
    assert.equal(counters[Counter.TunTxPackets], 6);
  });
});

describe('super-packets that came whole in one datagram (a peer\'s kernel fast path)', () => {
  const GRO = { vnetHdr: true, udpGso: true, udpGro: true, groFlags: 1 };
  const MTU = 1472;
  const PEER_ADDR = ip('192.168.77.2');

  /** A TCP packet 10.244.2.5 -> 10.244.1.7 of `data` bytes whose checksum field holds `check` ('partial': the pseudo-header sum). */
  function tcpPacket(data: number, check: 'partial' | number, id = 9): Buffer {
    const seg = Buffer.alloc(20 + data);
    seg.writeUInt16BE(40000, 0);
    seg.writeUInt16BE(5201, 2);
    seg.writeUInt32BE(1, 4);
    seg[12] = 5 << 4; // header length 20
    seg[13] = 0x10; // ACK
    seg.writeUInt16BE(512, 14);
    for (let i = 20; i < seg.length; i++) seg[i] = (i * 13) & 0xff;
    const p = packet({ src: '10.244.2.5', dst: '10.244.1.7', id, ttl: 63, protocol: 6, payload: seg });
    const pseudo = Buffer.alloc(12);
    p.copy(pseudo, 0, 12, 20);
    pseudo[9] = 6;
    pseudo.writeUInt16BE(seg.length, 10);
    p.writeUInt16BE(check === 'partial' ? sum16(pseudo, 0, 12) : check, 20 + 16);
    return p;
  }

  it('writes one as a GSO write of MTU-sized segments even when UDP_GRO reports a segment size, after what came before it', () => {
    const { io, counters, fwd } = setup({ batchSize: 4, udpSlotSize: 65536, offloads: GRO, tunMtu: MTU });
    const before = inbound(1, 40);
    const big = tcpPacket(20_000, 'partial');
    io.udp.inject(before, PEER_ADDR, 8285);
    // the kernel hands a UDP-tunnel GSO datagram up whole, its cmsg naming the inner segment size
    io.udp.pending.push({ bytes: big, addr: PEER_ADDR, port: 8285, segment: 1420 });
    assert.equal(fwd.pumpUdp(), 2);
    assert.equal(io.tun.written.length, 2);
    assertForwarded((io.tun.written[0] as Buffer).subarray(10), before);
    const w = io.tun.written[1] as Buffer;
    const h = { flags: w[0], gsoType: w[1], hdrLen: w.readUInt16LE(2), gsoSize: w.readUInt16LE(4), csumStart: w.readUInt16LE(6), csumOffset: w.readUInt16LE(8) };
    assert.deepEqual(h, { flags: 1, gsoType: 1, hdrLen: 40, gsoSize: MTU - 40, csumStart: 20, csumOffset: 16 });
    assert.equal(w.length - 10, big.length);
    assert.equal(w[10 + 8], 62, 'TTL decremented');
    assert.ok(headerChecksumOk(w.subarray(10)));
    expectCounters(counters, {
      udp_rx_packets: 2, udp_rx_bytes: before.length + big.length, tun_tx_packets: 2, tun_tx_bytes: before.length + big.length,
      udp_rx_super_packets: 1,
    });
  });

  it('drops one whose TCP checksum is neither partial nor right, and counts it', () => {
    const { io, counters, fwd } = setup({ batchSize: 4, udpSlotSize: 65536, offloads: GRO, tunMtu: MTU });
    io.udp.inject(tcpPacket(5_000, 0x1234), PEER_ADDR, 8285);
    assert.equal(fwd.pumpUdp(), 1);
    assert.equal(io.tun.written.length, 0);
    assert.equal(counters[Counter.DropBadSuperPacket], 1);
    assert.equal(counters[Counter.UdpRxSuperPackets], 0);
  });

  it('without tunMtu (or a virtio-net header) such a datagram is written as it is, as before', () => {
    const { io, counters, fwd } = setup({ batchSize: 4, udpSlotSize: 65536, offloads: GRO });
    io.udp.inject(tcpPacket(3_000, 'partial'), PEER_ADDR, 8285);
    assert.equal(fwd.pumpUdp(), 1);
    assert.equal(io.tun.written.length, 1);
    assert.equal(counters[Counter.UdpRxSuperPackets], 0);
  });
});

// ---- source validation --------------------------------------------------------

describe('source validation (decap)', () => {
  const ROGUE = ip('192.168.77.66');
  const OTHER_PEER = { address: ip('192.168.77.3'), port: 8285 };
  const twoPeers = (): RouteTable =>
    routes(['10.244.2.0', 24, '192.168.77.2', 8285], ['10.244.3.0', 24, '192.168.77.3', 8285]);
  const from = (src: string, ttl = 63, id = 1): Buffer => packet({ src, dst: '10.244.1.7', id, ttl, payload: 40 });

  it('drops a well-formed datagram from an address that is no peer, even with a source the peer owns, and answers nothing', () => {
    const { io, counters, fwd } = setup({}, twoPeers());
    const spoofed = from('10.244.2.5', 1); // TTL 1 would earn an ICMP error from a known peer
    io.udp.inject(spoofed, ROGUE, 8285);
    assert.equal(fwd.pumpUdp(), 1);
    assert.equal(io.tun.written.length, 0);
    assert.equal(io.udp.sent.length, 0, 'no ICMP error to an unknown sender');
    expectCounters(counters, { udp_rx_packets: 1, udp_rx_bytes: spoofed.length, drop_unknown_sender: 1 });
  });

  it("drops a peer's datagram whose source is another host's subnet, this host's own, or no one's in the network", () => {
    const { io, counters, fwd } = setup({}, twoPeers());
    const bad = [from('10.244.3.5'), from('10.244.1.9'), from('10.244.200.1')];
    const good = from('10.244.2.5');
    for (const d of [...bad, good]) io.udp.inject(d, PEER.address, PEER.port);
    assert.equal(fwd.pumpUdp(), 4);
    assert.equal(io.tun.written.length, 1);
    assertForwarded(io.tun.written[0], good);
    expectCounters(counters, {
      udp_rx_packets: 4, udp_rx_bytes: sumLengths([...bad, good]), drop_source_not_owned: 3,
      tun_tx_packets: 1, tun_tx_bytes: good.length,
    });
  });

  it('delivers each peer only its own sources', () => {
    const { io, fwd } = setup({}, twoPeers());
    io.udp.inject(from('10.244.3.5', 63, 1), OTHER_PEER.address, OTHER_PEER.port);
    io.udp.inject(from('10.244.2.5', 63, 2), PEER.address, PEER.port);
    io.udp.inject(from('10.244.2.5', 63, 3), OTHER_PEER.address, OTHER_PEER.port);
    fwd.pumpUdp();
    assert.deepEqual(io.tun.written.map((w) => w.readUInt16BE(4)), [1, 2], 'IP IDs of the delivered packets');
  });

  it('delivers a source outside the cluster network from a known peer, and counts it', () => {
    const { io, counters, fwd } = setup();
    const external = from('203.0.113.5');
    io.udp.inject(external, PEER.address, PEER.port);
    fwd.pumpUdp();
    assert.equal(io.tun.written.length, 1);
    expectCounters(counters, {
      udp_rx_packets: 1, udp_rx_bytes: external.length, udp_rx_outside_network: 1, tun_tx_packets: 1, tun_tx_bytes: external.length,
    });
  });

  it("drops a packet in which one known host speaks with another known host's address", () => {
    const { io, counters, fwd } = setup({}, twoPeers());
    io.udp.inject(from('192.168.77.3', 63, 1), PEER.address, PEER.port); // host .2 claiming to be host .3
    io.udp.inject(from('192.168.77.2', 63, 2), PEER.address, PEER.port); // its own address: fine
    fwd.pumpUdp();
    assert.deepEqual(io.tun.written.map((w) => w.readUInt16BE(4)), [2]);
    assert.equal(counters[Counter.DropSourceNotOwned], 1);
  });

  it('follows route changes: a subnet moved to another host is accepted only from that host', () => {
    const { io, counters, fwd, table } = setup();
    table.set({ network: ip('10.244.2.0'), length: 24 }, OTHER_PEER);
    fwd.setRoutes(table.snapshot());
    io.udp.inject(from('10.244.2.5', 63, 1), PEER.address, PEER.port);
    io.udp.inject(from('10.244.2.5', 63, 2), OTHER_PEER.address, OTHER_PEER.port);
    fwd.pumpUdp();
    assert.deepEqual(io.tun.written.map((w) => w.readUInt16BE(4)), [2]);
    assert.equal(counters[Counter.DropUnknownSender], 1, 'the old host is no peer any more');
  });

  it('counts every datagram of a GRO message from an unknown sender', () => {
    const { io, counters, fwd } = setup({ batchSize: 4, udpSlotSize: 65536, offloads: { vnetHdr: true, udpGso: true, udpGro: true, groFlags: 1 } });
    const datagrams = Array.from({ length: 7 }, (_, i) => from('10.244.2.5', 63, i + 1));
    io.udp.injectGro(datagrams, ROGUE, 8285);
    assert.equal(fwd.pumpUdp(), 7);
    assert.equal(io.tun.written.length, 0);
    assert.equal(counters[Counter.DropUnknownSender], 7);
  });

  it('with sourceValidation false, anyone reaching the port is delivered (flannel\'s behaviour)', () => {
    const { io, counters, fwd } = setup({ sourceValidation: false });
    const spoofed = from('10.244.3.5');
    io.udp.inject(spoofed, ROGUE, 8285);
    fwd.pumpUdp();
    assert.equal(io.tun.written.length, 1);
    expectCounters(counters, { udp_rx_packets: 1, udp_rx_bytes: spoofed.length, tun_tx_packets: 1, tun_tx_bytes: spoofed.length });
  });
});
