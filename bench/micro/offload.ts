/**
 * The native offload functions, each through the same C the data path runs.
 * The test-facing bindings add one N-API call and, for split and coalesce,
 * the copies that hand every result to JavaScript as new Buffers: those
 * copies (~66 KB and 45 Buffer objects per split) dominate the split's figure;
 * the data path sends the segments straight from the slab. The split's own
 * work is 45 segment checksums (about the 64 KiB checksum below) plus headers.
 *   checksum      C Internet checksum over 1500 B and 64 KiB
 *   gsoSplit      a 64 KiB TCP super-packet into 1472-byte wire packets (45 segments)
 *   groCoalesce   45 consecutive segments of one flow into one write
 *
 *   node dist/bench/micro/offload.js
 */
import { IPPROTO_TCP, writeIpv4Header } from '../../src/encap';
import { loadNative } from '../../src/native';
import { parseIpv4 } from '../../src/net/ipv4';
import { seededRandom } from '../../test/prng';
import { runMain, runMicroSuite, sink, type MicroCase } from './lib/suite';

const SRC = parseIpv4('10.244.1.2') as number;
const DST = parseIpv4('10.244.2.2') as number;
const THL = 32; // TCP header with timestamps, as Linux sends it
const MSS = 1472 - 20 - THL;

/** A TCP super-packet as a TUN with TSO hands it over: virtio-net header + IPv4 + TCP + payload. */
function superPacket(payload: number, rng: () => number): Buffer {
  const b = Buffer.alloc(10 + 20 + THL + payload);
  b[0] = 1; // NEEDS_CSUM
  b[1] = 1; // GSO TCPV4
  b.writeUInt16LE(20 + THL, 2);
  b.writeUInt16LE(MSS, 4);
  b.writeUInt16LE(20, 6);
  b.writeUInt16LE(16, 8);
  writeIpv4Header(b, 10, { totalLength: 20 + THL + payload, id: 1, flagsFragment: 0x4000, ttl: 63, protocol: IPPROTO_TCP, src: SRC, dst: DST });
  const t = 30;
  b.writeUInt16BE(40000, t);
  b.writeUInt16BE(5201, t + 2);
  b.writeUInt32BE(0xfffff000, t + 4);
  b.writeUInt32BE(77, t + 8);
  b[t + 12] = (THL / 4) << 4;
  b[t + 13] = 0x10;
  b.writeUInt16BE(502, t + 14);
  b.set([1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2], t + 20);
  for (let i = 10 + 20 + THL; i < b.length; i++) b[i] = rng() & 0xff;
  return b;
}

function cases(): MicroCase[] {
  const native = loadNative();
  const rng = seededRandom(0x0ff10ad);
  const big = superPacket(MSS * 44 + 500, rng);
  const segments = native.gsoSplit(big);
  if (segments === null || segments.length !== 45) throw new Error(`expected 45 segments, got ${segments?.length}`);
  const slab = Buffer.concat(segments);
  const offsets = new Int32Array(segments.length);
  const lens = new Int32Array(segments.length);
  let at = 0;
  segments.forEach((s, i) => {
    offsets[i] = at;
    lens[i] = s.length;
    at += s.length;
  });
  const pristine = Buffer.from(slab); // coalescing rewrites the first header; restore it each time
  const packet = Buffer.from(big.subarray(10, 10 + 1500));
  const flags = native.GRO_TCP;
  return [
    { name: 'checksum 1500 B (C)', callsPerOp: 1000, fn: () => { for (let i = 0; i < 1000; i++) sink.value ^= native.checksum(packet, 0, 1500); } },
    { name: 'checksum 64 KiB (C)', callsPerOp: 10, fn: () => { for (let i = 0; i < 10; i++) sink.value ^= native.checksum(big, 10, big.length - 10); } },
    { name: 'gsoSplit 64 KiB -> 45 segments', callsPerOp: 10, fn: () => { for (let i = 0; i < 10; i++) sink.value ^= native.gsoSplit(big)?.length ?? 0; } },
    {
      name: 'groCoalesce 45 segments -> 1 write',
      callsPerOp: 10,
      fn: () => {
        for (let i = 0; i < 10; i++) {
          pristine.copy(slab, 0, 0, lens[0] as number);
          sink.value ^= native.groCoalesce(slab, offsets, lens, segments.length, flags).length;
        }
      },
    },
  ];
}

runMain(() => runMicroSuite('offload (native)', cases()));
