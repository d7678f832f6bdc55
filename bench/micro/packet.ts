/**
 * Per-packet functions of src/encap, the work the data plane's JS does on
 * every packet (or on the exceptional ones):
 *   validateIpv4    a 1500-byte TCP/IPv4 packet (version, lengths, header checksum)
 *   decrementTtl    RFC 1624 incremental checksum update (bytes restored after each call)
 *   internetChecksum over 20 B (a header), 1500 B (a packet), 64 KiB (a TSO super-packet)
 *   buildIcmpError  net unreachable quoting a 1500-byte packet (header + 8 bytes)
 *
 *   node dist/bench/micro/packet.js
 *   BENCH_MAX_TIME=1 node dist/bench/micro/packet.js   # seconds per case (default 3)
 */
import {
  buildIcmpError,
  decrementTtl,
  ICMP_DEST_UNREACH,
  ICMP_ERROR_MAX_BYTES,
  ICMP_NET_UNREACH,
  internetChecksum,
  IPPROTO_TCP,
  Ipv4Drop,
  validateIpv4,
  writeIpv4Header,
} from '../../src/encap';
import { parseIpv4 } from '../../src/net/ipv4';
import { seededRandom } from '../../test/prng';
import { runMain, runMicroSuite, sink, type MicroCase } from './lib/suite';

const SRC = parseIpv4('10.244.1.2') as number;
const DST = parseIpv4('10.244.2.2') as number;
const TUN_ADDRESS = parseIpv4('10.244.1.0') as number;

/** A TCP/IPv4 packet of `size` bytes (DF set, TTL 64) with seeded random payload and a valid header checksum. */
function tcpPacket(size: number, rng: () => number): Uint8Array {
  const buf = new Uint8Array(size);
  for (let i = 20; i < size; i++) buf[i] = rng() & 0xff;
  writeIpv4Header(buf, 0, { totalLength: size, id: 0x1234, flagsFragment: 0x4000, ttl: 64, protocol: IPPROTO_TCP, src: SRC, dst: DST });
  return buf;
}

function cases(): MicroCase[] {
  const rng = seededRandom(0x9ac4e7);
  const mtuPacket = tcpPacket(1500, rng);
  const ttlPacket = tcpPacket(1500, rng);
  const superPacket = new Uint8Array(65536);
  for (let i = 0; i < superPacket.length; i++) superPacket[i] = rng() & 0xff;
  const icmpOut = new Uint8Array(ICMP_ERROR_MAX_BYTES);

  // every function must give a right answer before it is timed
  if (validateIpv4(mtuPacket, 0, 1500) !== Ipv4Drop.Ok) throw new Error('validateIpv4 rejected the test packet');
  const [ttl, c0, c1] = [ttlPacket[8] as number, ttlPacket[10] as number, ttlPacket[11] as number];
  if (decrementTtl(ttlPacket, 0) !== 63 || validateIpv4(ttlPacket, 0, 1500) !== Ipv4Drop.Ok) throw new Error('decrementTtl broke the header checksum');
  const icmpLen = buildIcmpError(icmpOut, 0, ICMP_DEST_UNREACH, ICMP_NET_UNREACH, TUN_ADDRESS, mtuPacket, 0, 1500);
  if (icmpLen !== 56 || validateIpv4(icmpOut, 0, icmpLen) !== Ipv4Drop.Ok || internetChecksum(icmpOut, 20, icmpLen - 20) !== 0) {
    throw new Error(`buildIcmpError wrote a bad packet (${icmpLen} bytes)`);
  }

  return [
    {
      name: 'validateIpv4 (1500 B packet)',
      callsPerOp: 1024,
      fn: () => {
        let acc = 0;
        for (let i = 0; i < 1024; i++) acc += validateIpv4(mtuPacket, 0, 1500);
        sink.value += acc;
      },
    },
    {
      name: 'decrementTtl (+ restore 3 bytes)',
      callsPerOp: 1024,
      fn: () => {
        let acc = 0;
        for (let i = 0; i < 1024; i++) {
          acc += decrementTtl(ttlPacket, 0);
          ttlPacket[8] = ttl;
          ttlPacket[10] = c0;
          ttlPacket[11] = c1;
        }
        sink.value += acc;
      },
    },
    {
      name: 'internetChecksum 20 B',
      callsPerOp: 1024,
      fn: () => {
        let acc = 0;
        for (let i = 0; i < 1024; i++) acc += internetChecksum(mtuPacket, 0, 20);
        sink.value += acc;
      },
    },
    {
      name: 'internetChecksum 1500 B',
      callsPerOp: 64,
      fn: () => {
        let acc = 0;
        for (let i = 0; i < 64; i++) acc += internetChecksum(mtuPacket, 0, 1500);
        sink.value += acc;
      },
    },
    {
      name: 'internetChecksum 64 KiB',
      callsPerOp: 1,
      fn: () => {
        sink.value += internetChecksum(superPacket, 0, superPacket.length);
      },
    },
    {
      name: 'buildIcmpError (quotes 28 B of 1500)',
      callsPerOp: 256,
      fn: () => {
        let acc = 0;
        for (let i = 0; i < 256; i++) acc += buildIcmpError(icmpOut, 0, ICMP_DEST_UNREACH, ICMP_NET_UNREACH, TUN_ADDRESS, mtuPacket, 0, 1500);
        sink.value += acc;
      },
    },
  ];
}

runMain(() => runMicroSuite('src/encap per-packet functions', cases()));
