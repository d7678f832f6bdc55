/**
 * Per-peer data-plane counters (src/workers/peer-counters.ts) as the
 * Forwarder keeps them over the in-memory TUN and UDP socket (memory-io.ts),
 * and what the agent makes of them: Prometheus series (registerPeerMetrics),
 * live rates (TrafficRates) and the debug drop log (DropLog).
 *
 * This host: subnet 10.244.1.0/24. Peers: host A 192.168.77.2 owns
 * 10.244.2.0/24; host B 192.168.77.3 owns 10.244.3.0/24 and 10.244.9.0/24
 * (received traffic from B counts under 10.244.3.0/24, its lowest subnet).
 * Packets are built here, not by src/encap.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { Writable } from 'node:stream';
import pino from 'pino';
import { Registry } from 'prom-client';

import { DropLog } from '../../src/agent/drop-log';
import { TrafficRates } from '../../src/agent/traffic-rates';
import type { PeerTraffic, RouteView } from '../../src/backend/backend';
import { registerDataPlaneMetrics, registerPeerMetrics } from '../../src/backend/udp/udp-metrics';
import { formatPrefix } from '../../src/net/ipv4';
import { RouteTable } from '../../src/routing';
import { Counter, newCounterBlock } from '../../src/workers/counters';
import { Forwarder, NO_OFFLOADS, type ForwarderOptions, type OffloadOptions } from '../../src/workers/forwarder';
import {
  newPeerCounterBlock,
  PEER_DROPS,
  PEER_STRIDE,
  peerBlockCapacity,
  PeerCounter,
  sumPeerSlot,
} from '../../src/workers/peer-counters';
import { cidr, ip } from '../addresses';
import { parseMetrics } from '../e2e/helpers';
import { vnetTcpPacket } from '../e2e/fixtures/tso-packet';
import { MemoryPacketIo, type Datagram } from './memory-io';

const TUN_FD = 7;
const UDP_FD = 9;
const HOST_A = ip('192.168.77.2');
const HOST_B = ip('192.168.77.3');
const ROGUE = ip('192.168.77.66');
const PORT = 8285;
const A = '10.244.2.0/24';
const B_LOW = '10.244.3.0/24';
const B_HIGH = '10.244.9.0/24';
const UDP_SLOT = 256;

// ---- packets (test-local) ------------------------------------------------------

function sum16(b: Uint8Array, start: number, end: number): number {
  let sum = 0;
  for (let i = start; i < end; i += 2) sum += (b[i] as number) * 256 + (i + 1 < end ? (b[i + 1] as number) : 0);
  while (sum > 0xffff) sum = (sum & 0xffff) + Math.floor(sum / 0x10000);
  return sum;
}

/** An IPv4/UDP-protocol packet with a valid header checksum and `payload` patterned bytes. */
function packet(src: string, dst: string, options: { id?: number; ttl?: number; payload?: number } = {}): Buffer {
  const payload = options.payload ?? 40;
  const b = Buffer.alloc(20 + payload);
  b[0] = 0x45;
  b.writeUInt16BE(b.length, 2);
  b.writeUInt16BE(options.id ?? 1, 4);
  b.writeUInt16BE(0x4000, 6);
  b[8] = options.ttl ?? 64;
  b[9] = 17;
  b.writeUInt32BE(ip(src), 12);
  b.writeUInt32BE(ip(dst), 16);
  for (let i = 20; i < b.length; i++) b[i] = (i * 7 + (options.id ?? 1)) & 0xff;
  b.writeUInt16BE(~sum16(b, 0, 20) & 0xffff, 10);
  return b;
}

/** An outbound packet from a local pod to `dst`. */
const outbound = (dst: string, id: number, payload = 40, ttl = 64): Buffer => packet('10.244.1.7', dst, { id, payload, ttl });
/** An inbound packet from `src` to a local pod. */
const inbound = (src: string, id: number, payload = 40, ttl = 63): Buffer => packet(src, '10.244.1.7', { id, payload, ttl });

const lengths = (packets: readonly Uint8Array[]): number => packets.reduce((t, p) => t + p.length, 0);

// ---- per-peer figures ------------------------------------------------------------

const TRAFFIC_NAMES: ReadonlyArray<readonly [number, string]> = [
  [PeerCounter.TxPackets, 'tx_packets'],
  [PeerCounter.TxBytes, 'tx_bytes'],
  [PeerCounter.RxPackets, 'rx_packets'],
  [PeerCounter.RxBytes, 'rx_bytes'],
];

/** The non-zero figures of one slot, by name ("tx_packets", ..., "decap/bad_checksum"). */
function figures(block: Float64Array, slot: number): Record<string, number> {
  const out: Record<string, number> = {};
  const base = slot * PEER_STRIDE;
  for (const [index, name] of TRAFFIC_NAMES) if (block[base + index] !== 0) out[name] = block[base + index] as number;
  for (const d of PEER_DROPS) if (block[base + d.index] !== 0) out[`${d.direction}/${d.reason}`] = block[base + d.index] as number;
  return out;
}

/** Every slot with a non-zero figure, by slot number. */
function touchedSlots(block: Float64Array): number[] {
  const slots: number[] = [];
  for (let s = 0; s < peerBlockCapacity(block); s++) if (Object.keys(figures(block, s)).length > 0) slots.push(s);
  return slots;
}

/** What memory-io recorded as sent into `subnet` (by the inner destination), as tx figures. */
function sentTo(io: MemoryPacketIo, subnet: string, host: number): Record<string, number> {
  const prefix = cidr(subnet);
  const mask = prefix.length === 0 ? 0 : (~0 << (32 - prefix.length)) >>> 0;
  const hits = io.udp.sent.filter((d) => ((d.bytes.readUInt32BE(16) & mask) >>> 0) === prefix.network);
  for (const d of hits) assert.equal(d.addr, host, `a datagram for ${subnet} went to another host`);
  return hits.length === 0 ? {} : { tx_packets: hits.length, tx_bytes: lengths(hits.map((d) => d.bytes)) };
}

// ---- set-up ----------------------------------------------------------------------------

function table(): RouteTable {
  const t = new RouteTable();
  // set in an order other than subnet order, so that slots and route indexes differ
  t.set(cidr(B_HIGH), { address: HOST_B, port: PORT });
  t.set(cidr(A), { address: HOST_A, port: PORT });
  t.set(cidr(B_LOW), { address: HOST_B, port: PORT });
  return t;
}

function slotOf(t: RouteTable, subnet: string): number {
  const e = t.entries().find((x) => formatPrefix(x.prefix) === subnet);
  assert.ok(e !== undefined, `no route for ${subnet}`);
  return e.slot;
}

interface Setup {
  readonly io: MemoryPacketIo;
  readonly counters: Float64Array;
  readonly block: Float64Array | null;
  readonly fwd: Forwarder;
  readonly table: RouteTable;
  readonly slot: (subnet: string) => number;
}

function setup(options: Partial<ForwarderOptions> & { withBlock?: boolean } = {}, routes = table()): Setup {
  const { withBlock = true, ...rest } = options;
  const io = new MemoryPacketIo(TUN_FD, UDP_FD);
  const counters = newCounterBlock();
  const snapshot = routes.snapshot();
  const block = withBlock ? newPeerCounterBlock(snapshot.slotCount) : null;
  const fwd = new Forwarder(io, {
    tunFd: TUN_FD,
    udpFd: UDP_FD,
    tunAddress: ip('10.244.1.0'),
    localSubnet: cidr('10.244.1.0/24'),
    clusterNetwork: cidr('10.244.0.0/16'),
    batchSize: 8,
    tunSlotSize: 1536,
    udpSlotSize: UDP_SLOT,
    icmpPerSecond: 1000,
    counters,
    peerCounters: block,
    routes: snapshot,
    ...rest,
  });
  return { io, counters, block, fwd, table: routes, slot: (s) => slotOf(routes, s) };
}

function blockOf(s: Setup): Float64Array {
  assert.ok(s.block !== null, 'test bug: no per-peer block');
  return s.block;
}

// ---- encap --------------------------------------------------------------------------------

describe('per-peer counters: encap (TUN -> UDP)', () => {
  it('counts packets and bytes per peer subnet, exactly as the datagrams the socket took', () => {
    const s = setup();
    const inputs = [
      outbound('10.244.2.5', 1, 10), outbound('10.244.3.5', 2, 200), outbound('10.244.2.6', 3, 77),
      outbound('10.244.9.1', 4, 33), outbound('10.244.2.7', 5, 0), outbound('10.244.3.8', 6, 1000),
      outbound('10.244.50.1', 7), // no route: counts for nobody
    ];
    for (let round = 0; round < 3; round++) s.io.tun.inject(...inputs); // 21 packets: more than one batch
    assert.equal(s.fwd.pumpTun(), 21);

    const block = blockOf(s);
    assert.deepEqual(figures(block, s.slot(A)), sentTo(s.io, A, HOST_A));
    assert.deepEqual(figures(block, s.slot(B_LOW)), sentTo(s.io, B_LOW, HOST_B));
    assert.deepEqual(figures(block, s.slot(B_HIGH)), sentTo(s.io, B_HIGH, HOST_B), 'tx counts under the destination subnet');
    assert.equal(figures(block, s.slot(A))['tx_packets'], 9);
    assert.equal(figures(block, s.slot(B_LOW))['tx_packets'], 6);
    assert.equal(figures(block, s.slot(B_HIGH))['tx_packets'], 3);
    assert.deepEqual(touchedSlots(block).sort(), [s.slot(A), s.slot(B_LOW), s.slot(B_HIGH)].sort());
    // the peers add up to the totals
    const tx = [A, B_LOW, B_HIGH].map((n) => figures(block, s.slot(n)));
    assert.equal(tx.reduce((t, f) => t + (f['tx_packets'] ?? 0), 0), s.counters[Counter.UdpTxPackets]);
    assert.equal(tx.reduce((t, f) => t + (f['tx_bytes'] ?? 0), 0), s.counters[Counter.UdpTxBytes]);
    assert.equal(s.counters[Counter.DropNoRoute], 3);
  });

  it('counts a datagram the kernel refused as encap send_failed for its peer, and not as sent', () => {
    const s = setup();
    const refused = outbound('10.244.3.5', 2, 50);
    s.io.udp.refuse = (d: Datagram) => d.bytes.readUInt16BE(4) === 2;
    s.io.tun.inject(outbound('10.244.2.5', 1, 60), refused, outbound('10.244.3.6', 3, 70), outbound('10.244.2.6', 4, 80));
    s.fwd.pumpTun();

    const block = blockOf(s);
    assert.equal(s.io.udp.sent.length, 3);
    assert.deepEqual(figures(block, s.slot(A)), { tx_packets: 2, tx_bytes: 80 + 100 });
    assert.deepEqual(figures(block, s.slot(B_LOW)), { tx_packets: 1, tx_bytes: 90, 'encap/send_failed': 1 });
    assert.deepEqual(figures(block, s.slot(B_HIGH)), {});
    assert.equal(s.counters[Counter.DropUdpSendFailed], 1);
  });

  it('counts TTL 1 (and 0) as encap ttl_expired for the peer the packet was going to', () => {
    const s = setup();
    s.io.tun.inject(outbound('10.244.9.5', 1, 40, 1), outbound('10.244.9.6', 2, 40, 0), outbound('10.244.2.5', 3, 40, 2));
    s.fwd.pumpTun();
    const block = blockOf(s);
    assert.deepEqual(figures(block, s.slot(B_HIGH)), { 'encap/ttl_expired': 2 });
    assert.deepEqual(figures(block, s.slot(A)), { tx_packets: 1, tx_bytes: 60 });
    assert.deepEqual(figures(block, s.slot(B_LOW)), {});
    assert.equal(s.counters[Counter.DropTtlExpiredEncap], 2);
  });
});

// ---- decap --------------------------------------------------------------------------------

describe('per-peer counters: decap (UDP -> TUN)', () => {
  it('counts datagrams from a host under its lowest subnet, whatever their inner source', () => {
    const s = setup();
    const fromA = [inbound('10.244.2.5', 1, 10), inbound('10.244.2.6', 2, 90)];
    const fromB = [inbound('10.244.3.5', 3, 20), inbound('10.244.9.5', 4, 30), inbound('10.244.9.6', 5, 40)];
    for (const d of fromA) s.io.udp.inject(d, HOST_A, PORT);
    for (const d of fromB) s.io.udp.inject(d, HOST_B, 40000);
    assert.equal(s.fwd.pumpUdp(), 5);
    assert.equal(s.io.tun.written.length, 5);

    const block = blockOf(s);
    assert.deepEqual(figures(block, s.slot(A)), { rx_packets: 2, rx_bytes: lengths(fromA) });
    assert.deepEqual(figures(block, s.slot(B_LOW)), { rx_packets: 3, rx_bytes: lengths(fromB) });
    assert.deepEqual(figures(block, s.slot(B_HIGH)), {}, 'a host counts under its lowest subnet only');
    assert.equal(s.counters[Counter.UdpRxPackets], 5);
    assert.equal(s.counters[Counter.UdpRxBytes], lengths([...fromA, ...fromB]));
  });

  it('counts malformed datagrams from a peer under that peer and the right reason, and still as received', () => {
    const s = setup();
    const tooShort = inbound('10.244.2.5', 1).subarray(0, 19);
    const badChecksum = Buffer.from(inbound('10.244.2.5', 2));
    badChecksum[10] = (badChecksum[10] as number) ^ 0xff;
    const notLocal = packet('10.244.2.5', '10.244.5.7', { id: 3 });
    const notOwned = inbound('10.244.3.5', 4); // B's subnet, sent by A
    const expired = inbound('10.244.2.5', 5, 40, 1);
    const truncated = inbound('10.244.2.5', 6, UDP_SLOT); // larger than a receive slot
    const good = inbound('10.244.2.5', 7);
    const all = [tooShort, badChecksum, notLocal, notOwned, expired, truncated, good];
    for (const d of all) s.io.udp.inject(d, HOST_A, PORT);
    assert.equal(s.fwd.pumpUdp(), 7);
    assert.equal(s.io.tun.written.length, 1);

    const block = blockOf(s);
    assert.deepEqual(figures(block, s.slot(A)), {
      rx_packets: 7,
      rx_bytes: lengths(all) - truncated.length, // a truncated datagram's length is unknown
      'decap/too_short': 1,
      'decap/bad_checksum': 1,
      'decap/not_local_subnet': 1,
      'decap/source_not_owned': 1,
      'decap/ttl_expired': 1,
      'decap/truncated': 1,
    });
    assert.deepEqual(figures(block, s.slot(B_LOW)), {}, 'the spoofed source does not make it B\'s traffic');
    // one sender: its figures are the totals
    const totals: ReadonlyArray<readonly [PeerCounter, Counter]> = [
      [PeerCounter.RxDropTooShort, Counter.DropTooShort], [PeerCounter.RxDropBadChecksum, Counter.DropBadChecksum],
      [PeerCounter.RxDropNotLocalSubnet, Counter.DropNotLocalSubnet], [PeerCounter.RxDropSourceNotOwned, Counter.DropSourceNotOwned],
      [PeerCounter.RxDropTtlExpired, Counter.DropTtlExpiredDecap], [PeerCounter.RxDropTruncated, Counter.DropTruncated],
      [PeerCounter.RxPackets, Counter.UdpRxPackets], [PeerCounter.RxBytes, Counter.UdpRxBytes],
    ];
    for (const [peer, total] of totals) assert.equal(block[s.slot(A) * PEER_STRIDE + peer], s.counters[total], `peer counter ${peer}`);
  });

  it('a datagram from an unknown address touches no peer slot, with or without source validation', () => {
    for (const sourceValidation of [true, false]) {
      const s = setup({ sourceValidation });
      s.io.udp.inject(inbound('10.244.2.5', 1), ROGUE, PORT);
      s.io.udp.inject(inbound('10.244.2.5', 2).subarray(0, 10), ROGUE, PORT);
      s.io.udp.inject(inbound('10.244.2.5', 3, UDP_SLOT), ROGUE, PORT);
      assert.equal(s.fwd.pumpUdp(), 3);
      assert.deepEqual(touchedSlots(blockOf(s)), [], `sourceValidation ${String(sourceValidation)}`);
      assert.equal(s.counters[Counter.UdpRxPackets], 3);
    }
  });

  it('an ICMP error sent back to a peer is not counted as traffic to it', () => {
    const s = setup();
    s.io.udp.inject(inbound('10.244.2.5', 1, 40, 1), HOST_A, PORT);
    s.fwd.pumpUdp();
    assert.equal(s.io.udp.sent.length, 1, 'time exceeded went back');
    assert.deepEqual(figures(blockOf(s), s.slot(A)), { rx_packets: 1, rx_bytes: 60, 'decap/ttl_expired': 1 });
  });
});

// ---- no block, small block, larger block ------------------------------------------------------

/** The same mixed traffic in both directions, refusals and drops included. */
function drive(s: Setup): void {
  s.io.udp.refuse = (d: Datagram) => d.bytes.readUInt16BE(4) === 3;
  s.io.tun.inject(outbound('10.244.2.5', 1), outbound('10.244.3.5', 2, 300), outbound('10.244.9.5', 3),
    outbound('10.244.2.9', 4, 10, 1), outbound('10.244.77.1', 5));
  s.fwd.pumpTun();
  s.io.udp.inject(inbound('10.244.2.5', 11), HOST_A, PORT);
  s.io.udp.inject(inbound('10.244.3.5', 12, 500), HOST_B, PORT);
  s.io.udp.inject(inbound('10.244.2.5', 13).subarray(0, 12), HOST_B, PORT);
  s.io.udp.inject(inbound('10.244.2.5', 14), ROGUE, PORT);
  s.fwd.pumpUdp();
}

describe('per-peer counters: blocks', () => {
  it('with peerCounters null nothing asks for per-packet results and the totals are the same as with a block', () => {
    const withBlock = setup();
    const without = setup({ withBlock: false });
    const perPacketArgs: unknown[] = [];
    const send = without.io.udpSendBatch.bind(without.io);
    without.io.udpSendBatch = (...args: Parameters<MemoryPacketIo['udpSendBatch']>): number => {
      perPacketArgs.push(args[8]);
      return send(...args);
    };
    drive(withBlock);
    drive(without);
    assert.deepEqual(without.counters, withBlock.counters);
    assert.deepEqual(without.io.udp.sent, withBlock.io.udp.sent);
    assert.ok(perPacketArgs.length > 0);
    assert.ok(perPacketArgs.every((p) => p === null || p === undefined), 'per-packet results were asked for without a block');
    assert.ok(touchedSlots(blockOf(withBlock)).length > 0, 'the run with a block counted something');
  });

  it('a block with fewer slots than the routes is left alone (counting stops rather than mixing peers)', () => {
    const routes = table();
    for (let k = 0; k < 70; k++) routes.set(cidr(`10.100.${k}.0/24`), { address: ip(`192.168.78.${k + 1}`), port: PORT });
    const small = newPeerCounterBlock(1);
    assert.ok(peerBlockCapacity(small) < routes.slotCount, 'test bug: the block is large enough');
    const s = setup({ peerCounters: small, withBlock: false }, routes);
    drive(s);
    assert.deepEqual(touchedSlots(small), []);
    const reference = setup({}, table());
    drive(reference);
    assert.deepEqual(s.counters, reference.counters, 'the totals do not depend on the per-peer block');
  });

  it('setRoutes with a larger block carries the figures over and counts there from then on', () => {
    const s = setup();
    const old = blockOf(s);
    drive(s);
    const before = Float64Array.from(old);
    const slots = [A, B_LOW, B_HIGH].map((n) => s.slot(n));

    // routes grow beyond the old block: no block yet, counting pauses without touching the old one
    for (let k = 0; k < 70; k++) s.table.set(cidr(`10.${100 + k}.0.0/24`), { address: ip(`192.168.78.${k + 1}`), port: PORT });
    s.fwd.setRoutes(s.table.snapshot());
    s.io.tun.inject(outbound('10.244.2.5', 20));
    s.fwd.pumpTun();
    assert.deepEqual(old, before, 'the old block was written while too small');

    const bigger = newPeerCounterBlock(s.table.slotCount);
    assert.ok(peerBlockCapacity(bigger) > peerBlockCapacity(old));
    s.fwd.setRoutes(s.table.snapshot(), bigger);
    for (const slot of slots) assert.deepEqual(figures(bigger, slot), figures(before, slot), `slot ${slot} after the copy`);

    const newPeer = slotOf(s.table, '10.169.0.0/24');
    assert.ok(newPeer >= peerBlockCapacity(old), 'test bug: the new peer fits the old block');
    s.io.tun.inject(outbound('10.244.2.5', 21, 40), packet('10.244.1.7', '10.169.0.9', { id: 22, payload: 20 }));
    s.io.udp.inject(packet('10.169.0.5', '10.244.1.7', { id: 23, payload: 30 }), ip('192.168.78.70'), PORT);
    s.fwd.pumpTun();
    s.fwd.pumpUdp();
    assert.deepEqual(old, before, 'the old block is written no more');
    const a = figures(bigger, s.slot(A));
    const was = figures(before, s.slot(A));
    assert.equal(a['tx_packets'], (was['tx_packets'] ?? 0) + 1);
    assert.equal(a['tx_bytes'], (was['tx_bytes'] ?? 0) + 60);
    assert.deepEqual(figures(bigger, newPeer), { tx_packets: 1, tx_bytes: 40, rx_packets: 1, rx_bytes: 50 });
  });

  it('setRoutes without a block keeps the one in use, and its figures', () => {
    const s = setup();
    drive(s);
    const before = Float64Array.from(blockOf(s));
    s.table.set(cidr('10.244.4.0/24'), { address: ip('192.168.77.4'), port: PORT });
    s.fwd.setRoutes(s.table.snapshot());
    assert.deepEqual(blockOf(s), before);
    s.io.tun.inject(outbound('10.244.4.4', 1, 20));
    s.fwd.pumpTun();
    assert.deepEqual(figures(blockOf(s), slotOf(s.table, '10.244.4.0/24')), { tx_packets: 1, tx_bytes: 40 });
  });

  it('sumPeerSlot adds a slot over blocks of any size; a slot beyond a block counts zero', () => {
    const small = newPeerCounterBlock(1);
    const big = newPeerCounterBlock(100);
    assert.equal(peerBlockCapacity(small), 64);
    assert.equal(peerBlockCapacity(big), 128);
    assert.ok(small.buffer instanceof SharedArrayBuffer);
    small[3 * PEER_STRIDE + PeerCounter.TxPackets] = 2;
    big[3 * PEER_STRIDE + PeerCounter.TxPackets] = 5;
    big[3 * PEER_STRIDE + PeerCounter.RxDropBadChecksum] = 1;
    big[100 * PEER_STRIDE + PeerCounter.RxBytes] = 9;
    assert.deepEqual(figures(sumPeerSlot([small, big], 3), 0), { tx_packets: 7, 'decap/bad_checksum': 1 });
    assert.deepEqual(figures(sumPeerSlot([small, big], 100), 0), { rx_bytes: 9 });
    assert.deepEqual(figures(sumPeerSlot([], 3), 0), {});
  });
});

// ---- offload mode --------------------------------------------------------------------------------

describe('per-peer counters: offload mode', () => {
  const OFFLOADS: OffloadOptions = { vnetHdr: true, udpGso: true, udpGro: true, groFlags: 1 };
  const MSS = 1448;

  it('a TSO super-packet counts one sent packet per datagram the kernel took', () => {
    const s = setup({ offloads: OFFLOADS, tunSlotSize: 65536 + 64, udpSlotSize: 65536, batchSize: 4 });
    const superPacket = vnetTcpPacket(MSS * 5 + 100, MSS); // 10.244.1.2 -> 10.244.2.2
    const plain = vnetTcpPacket(100, 0);
    s.io.tun.inject(superPacket, plain);
    assert.equal(s.fwd.pumpTun(), 2);
    assert.equal(s.io.udp.sent.length, 7, 'six segments and one plain packet');
    assert.deepEqual(figures(blockOf(s), s.slot(A)), sentTo(s.io, A, HOST_A));
    assert.equal(figures(blockOf(s), s.slot(A))['tx_packets'], s.io.udp.sent.length);
    assert.equal(s.counters[Counter.UdpTxPackets], 7);
  });

  it('a refused segment of a super-packet counts as send_failed, the others as sent', () => {
    const s = setup({ offloads: OFFLOADS, tunSlotSize: 65536 + 64, udpSlotSize: 65536, batchSize: 4 });
    let seen = 0;
    s.io.udp.refuse = () => ++seen === 3;
    s.io.tun.inject(vnetTcpPacket(MSS * 3, MSS));
    s.fwd.pumpTun();
    assert.equal(s.io.udp.sent.length, 2);
    assert.deepEqual(figures(blockOf(s), s.slot(A)), { ...sentTo(s.io, A, HOST_A), 'encap/send_failed': 1 });
    assert.equal(s.counters[Counter.DropUdpSendFailed], 1);
  });

  it('every datagram of a UDP_GRO message counts as received from its sender', () => {
    const s = setup({ offloads: OFFLOADS, tunSlotSize: 65536 + 64, udpSlotSize: 65536, batchSize: 4 });
    const datagrams = Array.from({ length: 6 }, (_, i) => inbound('10.244.9.5', i + 1, 100));
    datagrams.push(inbound('10.244.9.5', 7, 30)); // the last may be shorter
    s.io.udp.injectGro(datagrams, HOST_B, PORT);
    assert.equal(s.fwd.pumpUdp(), 7);
    assert.deepEqual(figures(blockOf(s), s.slot(B_LOW)), { rx_packets: 7, rx_bytes: lengths(datagrams) });
  });
});

// ---- metrics --------------------------------------------------------------------------------------

function traffic(partial: Partial<PeerTraffic>): PeerTraffic {
  return { txPackets: 0, txBytes: 0, rxPackets: 0, rxBytes: 0, drops: {}, ...partial };
}

describe('registerPeerMetrics', () => {
  it('gives per-subnet series from the routes, drop series only for reasons that occurred', async () => {
    const routes: RouteView[] = [
      {
        subnet: cidr(A), publicIp: HOST_A, via: 'udp', port: PORT,
        traffic: traffic({ txPackets: 5, txBytes: 500, rxPackets: 3, rxBytes: 300, drops: { 'encap/send_failed': 2, 'decap/bad_checksum': 1 } }),
      },
      { subnet: cidr(B_LOW), publicIp: HOST_B, via: 'udp', port: 9000, traffic: traffic({ txPackets: 1, txBytes: 1400 }) },
      { subnet: cidr('10.244.4.0/24'), publicIp: ip('192.168.77.4'), via: 'udp', port: PORT }, // no figures kept
    ];
    let current = routes;
    const registry = new Registry();
    registerPeerMetrics(registry, () => current);
    const m = parseMetrics(await registry.metrics());

    const series = (name: string, subnet: string): number | undefined => m.get(`${name}{subnet="${subnet}"}`);
    assert.equal(series('weft_peer_sent_packets_total', A), 5);
    assert.equal(series('weft_peer_sent_bytes_total', A), 500);
    assert.equal(series('weft_peer_received_packets_total', A), 3);
    assert.equal(series('weft_peer_received_bytes_total', A), 300);
    assert.equal(series('weft_peer_sent_packets_total', B_LOW), 1);
    assert.equal(series('weft_peer_sent_bytes_total', B_LOW), 1400);
    assert.equal(series('weft_peer_received_packets_total', B_LOW), 0);
    assert.equal(series('weft_peer_sent_packets_total', '10.244.4.0/24'), undefined, 'no series for a peer without figures');

    const drops = [...m.entries()].filter(([k]) => k.startsWith('weft_peer_dropped_packets_total'));
    assert.deepEqual(new Map(drops), new Map([
      [`weft_peer_dropped_packets_total{direction="decap",reason="bad_checksum",subnet="${A}"}`, 1],
      [`weft_peer_dropped_packets_total{direction="encap",reason="send_failed",subnet="${A}"}`, 2],
    ]));
    assert.equal(m.get(`weft_peer_info{port="8285",public_ip="192.168.77.2",subnet="${A}"}`), 1);
    assert.equal(m.get(`weft_peer_info{port="9000",public_ip="192.168.77.3",subnet="${B_LOW}"}`), 1);
    assert.equal(m.get('weft_peer_info{port="8285",public_ip="192.168.77.4",subnet="10.244.4.0/24"}'), 1);

    // a peer that is no longer routed is gone from the next scrape; figures are read anew
    current = [{ ...routes[1] as RouteView, traffic: traffic({ txPackets: 4, drops: { 'decap/too_short': 6 } }) }];
    const next = parseMetrics(await registry.metrics());
    assert.equal(next.get(`weft_peer_sent_packets_total{subnet="${A}"}`), undefined);
    assert.equal(next.get(`weft_peer_info{port="8285",public_ip="192.168.77.2",subnet="${A}"}`), undefined);
    assert.equal(next.get(`weft_peer_sent_packets_total{subnet="${B_LOW}"}`), 4);
    assert.deepEqual([...next.keys()].filter((k) => k.startsWith('weft_peer_dropped_packets_total')),
      [`weft_peer_dropped_packets_total{direction="decap",reason="too_short",subnet="${B_LOW}"}`]);
  });

  it('shares a registry with the data-plane totals: the peers of a forwarder add up to weft_udp_tx_packets_total', async () => {
    const s = setup();
    drive(s);
    const block = blockOf(s);
    const views = (): RouteView[] => s.table.entries().map((e) => {
      const sum = sumPeerSlot([block], e.slot);
      const drops: Record<string, number> = {};
      for (const d of PEER_DROPS) if ((sum[d.index] as number) > 0) drops[`${d.direction}/${d.reason}`] = sum[d.index] as number;
      return {
        subnet: e.prefix, publicIp: e.peer.address, via: 'udp', port: e.peer.port,
        traffic: traffic({
          txPackets: sum[PeerCounter.TxPackets] as number, txBytes: sum[PeerCounter.TxBytes] as number,
          rxPackets: sum[PeerCounter.RxPackets] as number, rxBytes: sum[PeerCounter.RxBytes] as number, drops,
        }),
      };
    });
    const registry = new Registry();
    registerDataPlaneMetrics(registry, { counterBlocks: () => [s.counters], workers: () => 1, offloads: () => NO_OFFLOADS });
    registerPeerMetrics(registry, views);
    const m = parseMetrics(await registry.metrics());
    const sumOf = (name: string): number => [A, B_LOW, B_HIGH].reduce((t, n) => t + (m.get(`${name}{subnet="${n}"}`) ?? 0), 0);
    assert.equal(sumOf('weft_peer_sent_packets_total'), m.get('weft_udp_tx_packets_total'));
    assert.equal(sumOf('weft_peer_sent_bytes_total'), m.get('weft_udp_tx_bytes_total'));
    assert.equal(m.get(`weft_peer_dropped_packets_total{direction="encap",reason="send_failed",subnet="${B_HIGH}"}`), 1);
    assert.equal(m.get(`weft_peer_dropped_packets_total{direction="encap",reason="ttl_expired",subnet="${A}"}`), 1);
    assert.equal(m.get(`weft_peer_dropped_packets_total{direction="decap",reason="too_short",subnet="${B_LOW}"}`), 1);
    assert.equal(m.get('weft_dropped_packets_total{direction="decap",reason="unknown_sender"}'), 1);
  });
});

// ---- rates ------------------------------------------------------------------------------------------

describe('TrafficRates.compute', () => {
  it('gives per-second rates between two samples; 0 for a total that went down; nothing for a new subnet', async () => {
    let clock = 1_000;
    let totals = new Map<string, PeerTraffic>([
      [A, traffic({ txPackets: 100, txBytes: 10_000, rxPackets: 50, rxBytes: 4_000 })],
      [B_LOW, traffic({ txPackets: 500, txBytes: 50_000, rxPackets: 10, rxBytes: 1_000 })],
    ]);
    const rates = new TrafficRates({ read: () => totals, now: () => clock, periodMs: 5, keep: 100 });
    // rates() waits on an unref'd timer (an agent has other handles); here nothing else keeps the loop alive
    const keepAlive = setInterval(() => undefined, 1_000);
    try {
      const pending = rates.rates(); // samples now (t = 1 s), then waits one period
      clock = 3_000;
      totals = new Map([
        [A, traffic({ txPackets: 300, txBytes: 30_000, rxPackets: 50, rxBytes: 5_000 })],
        [B_LOW, traffic({ txPackets: 20, txBytes: 2_000, rxPackets: 30, rxBytes: 1_500 })], // tx went down: the subnet came back
        [B_HIGH, traffic({ txPackets: 7, txBytes: 700 })], // not in the first sample
      ]);
      const got = await pending;
      assert.deepEqual(Object.fromEntries(got), {
        [A]: { txPacketsPerSecond: 100, txBitsPerSecond: 80_000, rxPacketsPerSecond: 0, rxBitsPerSecond: 4_000 },
        [B_LOW]: { txPacketsPerSecond: 0, txBitsPerSecond: 0, rxPacketsPerSecond: 10, rxBitsPerSecond: 2_000 },
      });

      const again = rates.compute(new Map([[A, traffic({ txPackets: 140, txBytes: 10_000, rxPackets: 49, rxBytes: 4_000 })]]), 5_000);
      assert.deepEqual(Object.fromEntries(again), {
        [A]: { txPacketsPerSecond: 10, txBitsPerSecond: 0, rxPacketsPerSecond: 0, rxBitsPerSecond: 0 },
      });
      assert.equal(rates.compute(totals, 1_000).size, 0, 'no time has passed since the oldest sample');
      assert.equal(rates.compute(totals, 500).size, 0, 'a time before the oldest sample');
    } finally {
      rates.stop();
      clearInterval(keepAlive);
    }
    assert.equal(rates.compute(totals, 10_000).size, 0, 'no samples after stop');
  });
});

// ---- drop log ------------------------------------------------------------------------------------------

function capture(): { stream: Writable; records: () => Array<Record<string, unknown>> } {
  const chunks: string[] = [];
  const stream = new Writable({
    decodeStrings: false,
    write(chunk: string | Buffer, _enc, cb) {
      chunks.push(String(chunk));
      cb();
    },
  });
  const records = (): Array<Record<string, unknown>> =>
    chunks.join('').split('\n').filter((l) => l !== '').map((l) => JSON.parse(l) as Record<string, unknown>);
  return { stream, records };
}

describe('DropLog.report', () => {
  it('logs only the drops that grew since the last report, at debug', () => {
    const { stream, records } = capture();
    const log = pino({ level: 'debug' }, stream);
    let totals: Record<string, number> | null = { 'decap/bad_checksum': 3, 'encap/ttl_expired': 0 };
    const dropLog = new DropLog(log, () => totals);

    dropLog.report();
    dropLog.report(); // nothing new: no line
    totals = { 'decap/bad_checksum': 5, 'encap/ttl_expired': 1, 'decap/too_short': 0 };
    dropLog.report();
    totals = { 'decap/bad_checksum': 4, 'encap/ttl_expired': 1 }; // went down (a worker's block replaced): no line
    dropLog.report();
    totals = null; // no userspace data plane
    dropLog.report();
    totals = { 'decap/bad_checksum': 6, 'encap/ttl_expired': 1 };
    dropLog.report();

    const out = records();
    assert.deepEqual(out.map((r) => r['level']), [20, 20, 20]);
    assert.deepEqual(out.map((r) => r['drops']), [
      { 'decap/bad_checksum': 3 },
      { 'decap/bad_checksum': 2, 'encap/ttl_expired': 1 },
      { 'decap/bad_checksum': 2 },
    ]);
    for (const r of out) assert.equal(typeof r['msg'], 'string');
  });

  it('start() takes the totals of that moment as the baseline, and does nothing unless debug is on', () => {
    const { stream, records } = capture();
    const log = pino({ level: 'debug' }, stream);
    let totals = { 'decap/not_local_subnet': 10 };
    const dropLog = new DropLog(log, () => totals);
    dropLog.start(3_600_000);
    try {
      dropLog.report();
      totals = { 'decap/not_local_subnet': 12 };
      dropLog.report();
    } finally {
      dropLog.stop();
    }
    assert.deepEqual(records().map((r) => r['drops']), [{ 'decap/not_local_subnet': 2 }]);

    const quiet = capture();
    let reads = 0;
    const infoLog = new DropLog(pino({ level: 'info' }, quiet.stream), () => {
      reads++;
      return { 'encap/send_failed': 1 };
    });
    infoLog.start(3_600_000);
    infoLog.stop();
    assert.equal(reads, 0, 'start() read the totals though debug is off');
    infoLog.report();
    assert.deepEqual(quiet.records(), []);
  });
});
