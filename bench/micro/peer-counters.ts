/**
 * What per-peer counting adds to the packet loop's own work: the Forwarder's
 * encap and decap batches (128 packets of 1400 bytes for 16 peers, offloads
 * off) over an I/O stand-in that costs next to nothing, with and without a
 * per-peer block. The real system calls are left out on purpose: they are the
 * same in both cases, and they would hide a difference of nanoseconds. The
 * macro benchmark (`weft bench --modes weft-udp,weft-no-peer-counters`) gives
 * the same comparison with everything included.
 *
 *   node dist/bench/micro/peer-counters.js
 *   BENCH_MAX_TIME=1 node dist/bench/micro/peer-counters.js
 */
import { IPPROTO_UDP, writeIpv4Header } from '../../src/encap';
import { parseCidr, parseIpv4 } from '../../src/net/ipv4';
import { RouteTable } from '../../src/routing';
import { newCounterBlock, sumCounters } from '../../src/workers/counters';
import { Forwarder, type PacketIo } from '../../src/workers/forwarder';
import { newPeerCounterBlock, PEER_STRIDE, PeerCounter } from '../../src/workers/peer-counters';
import { SEND_RESULT_FIELDS } from '../../src/native';
import { runMain, runMicroSuite, sink, type MicroCase } from './lib/suite';

const BATCH = 128;
const SIZE = 1400;
const PEERS = 16;
const LOCAL = parseCidr('10.244.1.0/24');
const NETWORK = parseCidr('10.244.0.0/16');
const peerSubnet = (i: number): number => (parseIpv4(`10.244.${10 + i}.0`) as number);
const PEER_ADDRESSES = Uint32Array.from({ length: PEERS }, (_, i) => parseIpv4(`192.168.77.${10 + i}`) as number);
const peerAddress = (i: number): number => PEER_ADDRESSES[i] as number;

/**
 * Hands the Forwarder the same batch again and again: packets are written
 * into its slab once; each call only restores the bytes the loop changed (TTL
 * and header checksum) and reports the lengths. Every second read is empty,
 * so one pump is one batch.
 */
class ReplayIo implements PacketIo {
  readonly MAX_WRITE = 1024;
  readonly VNET_HDR_LEN = 10;
  private readonly filled = new WeakSet<Uint8Array>();
  /** the per-packet results are written whether asked for or not: the addon's cost is not what is measured */
  private readonly unasked = new Int32Array(SEND_RESULT_FIELDS * BATCH);
  private turn = 0;

  constructor(private readonly packet: (slot: number) => Uint8Array) {}

  private replay(slab: Uint8Array, slotSize: number, lens: Int32Array): number {
    if (this.turn++ % 2 === 1) return 0;
    if (!this.filled.has(slab)) {
      for (let i = 0; i < BATCH; i++) slab.set(this.packet(i), i * slotSize);
      this.filled.add(slab);
    }
    for (let i = 0; i < BATCH; i++) {
      const at = i * slotSize;
      const p = this.packet(i);
      slab[at + 8] = p[8] as number;
      slab[at + 10] = p[10] as number;
      slab[at + 11] = p[11] as number;
      lens[i] = SIZE;
    }
    return BATCH;
  }

  tunWriteSuper(): number {
    throw new Error('the replay sends no super-packets');
  }

  tunReadBatch(_fd: number, slab: Uint8Array, slotSize: number, _max: number, lens: Int32Array, io: Uint32Array, offsets?: Int32Array): number {
    io[0] = 1;
    const n = this.replay(slab, slotSize, lens);
    if (offsets !== undefined) for (let i = 0; i < n; i++) offsets[i] = i * slotSize; // slot by slot: a valid layout
    return n;
  }

  udpRecvBatch(
    _fd: number, slab: Uint8Array, slotSize: number, _max: number, lens: Int32Array, segs: Int32Array | null,
    addrs: Uint32Array, ports: Uint16Array, io: Uint32Array,
  ): number {
    io[0] = 1;
    const n = this.replay(slab, slotSize, lens);
    for (let i = 0; i < n; i++) {
      addrs[i] = peerAddress(i % PEERS);
      ports[i] = 8285;
      if (segs !== null) segs[i] = 0;
    }
    return n;
  }

  udpSendBatch(
    _fd: number, _slab: Uint8Array, _offsets: Int32Array, lens: Int32Array, _addrs: Uint32Array, _ports: Uint16Array,
    count: number, io: Uint32Array, perPacket?: Int32Array | null,
  ): number {
    let bytes = 0;
    const per = perPacket ?? this.unasked;
    for (let i = 0; i < count; i++) {
      bytes += lens[i] as number;
      per[SEND_RESULT_FIELDS * i] = 1;
      per[SEND_RESULT_FIELDS * i + 1] = lens[i] as number;
      per[SEND_RESULT_FIELDS * i + 2] = 0;
    }
    io[0] = 1;
    io[1] = 0;
    io[3] = bytes;
    return count;
  }

  tunWriteBatch(_fd: number, _slab: Uint8Array, _offsets: Int32Array, lens: Int32Array, count: number, io: Uint32Array): number {
    let bytes = 0;
    for (let i = 0; i < count; i++) bytes += lens[i] as number;
    io[0] = count;
    io[1] = 0;
    io[3] = bytes;
    return count;
  }

  udpSendVnetBatch(): number {
    throw new Error('offloads are off in this benchmark');
  }

  tunWritePackets(): number {
    throw new Error('offloads are off in this benchmark');
  }
}

function udpPacket(src: number, dst: number): Uint8Array {
  const p = new Uint8Array(SIZE);
  writeIpv4Header(p, 0, { totalLength: SIZE, id: 1, flagsFragment: 0x4000, ttl: 64, protocol: IPPROTO_UDP, src, dst });
  return p;
}

function forwarder(io: PacketIo, perPeer: boolean): { fw: Forwarder; counters: Float64Array; peers: Float64Array | null } {
  if (LOCAL === undefined || NETWORK === undefined) throw new Error('bad prefixes');
  const table = new RouteTable();
  for (let i = 0; i < PEERS; i++) table.set({ network: peerSubnet(i), length: 24 }, { address: peerAddress(i), port: 8285 });
  const routes = table.snapshot();
  const counters = newCounterBlock();
  const peers = perPeer ? newPeerCounterBlock(routes.slotCount) : null;
  const fw = new Forwarder(io, {
    tunFd: 3, udpFd: 4, tunAddress: LOCAL.prefix.network, localSubnet: LOCAL.prefix, clusterNetwork: NETWORK.prefix,
    batchSize: BATCH, tunSlotSize: 1536, udpSlotSize: 2048, icmpPerSecond: 0, counters, peerCounters: peers, routes,
  });
  return { fw, counters, peers };
}

function cases(): MicroCase[] {
  const local = LOCAL?.prefix.network as number;
  // encap: from this host's pod to each peer's pods; decap: from each peer's pods to this host's
  const outbound = Array.from({ length: BATCH }, (_, i) => udpPacket(local + 2, peerSubnet(i % PEERS) + 2));
  const inbound = Array.from({ length: BATCH }, (_, i) => udpPacket(peerSubnet(i % PEERS) + 2, local + 2));
  const made = [false, true].map((perPeer) => ({
    perPeer,
    encap: forwarder(new ReplayIo((i) => outbound[i] as Uint8Array), perPeer),
    decap: forwarder(new ReplayIo((i) => inbound[i] as Uint8Array), perPeer),
  }));

  // each loop must do the right thing before it is timed
  for (const m of made) {
    m.encap.fw.pumpTun();
    m.decap.fw.pumpUdp();
    const e = sumCounters([m.encap.counters]);
    const d = sumCounters([m.decap.counters]);
    if (e['udp_tx_packets'] !== BATCH || d['tun_tx_packets'] !== BATCH) {
      throw new Error(`the loop dropped packets: ${JSON.stringify(e)} ${JSON.stringify(d)}`);
    }
    if (m.perPeer) {
      const sent = m.encap.peers?.[PeerCounter.TxPackets] ?? 0;
      const received = m.decap.peers?.[PeerCounter.RxPackets] ?? 0;
      if (sent !== BATCH / PEERS || received !== BATCH / PEERS) throw new Error(`per-peer counters wrong: ${sent} ${received}`);
      if (PEER_STRIDE !== 16) throw new Error('layout changed');
    }
  }
  const label = (perPeer: boolean): string => (perPeer ? 'with per-peer counters' : 'without');
  return made.flatMap((m) => [
    {
      name: `encap, ${label(m.perPeer)} (per packet)`,
      callsPerOp: BATCH,
      fn: () => {
        sink.value += m.encap.fw.pumpTun();
      },
    },
    {
      name: `decap, ${label(m.perPeer)} (per packet)`,
      callsPerOp: BATCH,
      fn: () => {
        sink.value += m.decap.fw.pumpUdp();
      },
    },
  ]);
}

runMain(() => runMicroSuite('the packet loop with and without per-peer counters', cases()));
