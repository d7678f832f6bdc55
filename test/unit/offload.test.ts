/**
 * Differential tests of the C offload code (native/src/csum.c, gso.c, gro.c,
 * reached through the addon's test functions checksum, csumComplete, gsoSplit
 * and groCoalesce) against straightforward reference code written here.
 *
 * The reference code is deliberately independent of the C: checksums are
 * plain integer sums of big-endian 16-bit words reduced modulo 0xffff (no
 * folding, no native byte order), packets are built with src/encap's
 * writeIpv4Header plus the TCP/UDP header writers below, segments are built
 * as fresh arrays field by field, and the coalescing rules are the ones
 * documented in native/src/offload.h (weft_gro_plan) and
 * /work/shared/docs/flannel-facts.md section 8.
 *
 * Every random test prints its seed; WEFT_TEST_SEED=<n> reruns with that seed.
 */
import { describe, test, type TestContext } from 'node:test';
import assert from 'node:assert/strict';

import { IPPROTO_ICMP, IPPROTO_TCP, IPPROTO_UDP, writeIpv4Header } from '../../src/encap';
import { u16, u32, put16, put32, wordSum, ones, TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK, TCP_URG, TCP_ECE, TCP_CWR, VNET_LEN, NEEDS_CSUM, GSO_NONE, GSO_TCPV4, GSO_UDP, GSO_TCPV6, GSO_UDP_L4, GSO_ECN, encodeVnet, decodeVnet, type Vnet } from '../packet-bytes';
import { loadNative } from '../../src/native';
import { seededRandom } from '../prng';

const native = loadNative();

/** One seed per run (time-based unless WEFT_TEST_SEED is set); each test derives its own generator from it. */
const SEED = (process.env['WEFT_TEST_SEED'] !== undefined
  ? Number(process.env['WEFT_TEST_SEED'])
  : (Date.now() ^ (process.pid << 16))) >>> 0;

class Rng {
  private readonly next: () => number;
  private pool: Uint8Array | undefined;
  constructor(seed: number) {
    this.next = seededRandom(seed);
  }
  u32(): number {
    return this.next();
  }
  /** An integer in [0, n). */
  below(n: number): number {
    return n <= 1 ? 0 : Math.floor((this.next() / 0x1_0000_0000) * n);
  }
  /** An integer in [lo, hi]. */
  int(lo: number, hi: number): number {
    return lo + this.below(hi - lo + 1);
  }
  chance(p: number): boolean {
    return this.next() / 0x1_0000_0000 < p;
  }
  pick<T>(items: readonly T[]): T {
    return items[this.below(items.length)] as T;
  }
  /** n random bytes; long runs are copied from a random place in a pool of random bytes (faster, random enough). */
  bytes(n: number): Uint8Array {
    if (n > 256) {
      this.pool ??= this.fresh(262_144);
      const at = this.below(this.pool.length - n + 1);
      const out = this.pool.slice(at, at + n);
      out.set(this.fresh(16));
      return out;
    }
    return this.fresh(n);
  }
  private fresh(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i += 4) {
      const v = this.next();
      out[i] = v & 0xff;
      if (i + 1 < n) out[i + 1] = (v >>> 8) & 0xff;
      if (i + 2 < n) out[i + 2] = (v >>> 16) & 0xff;
      if (i + 3 < n) out[i + 3] = v >>> 24;
    }
    return out;
  }
}

function rngFor(t: TestContext, salt: number): Rng {
  const seed = (SEED ^ Math.imul(salt, 0x9e3779b1)) >>> 0;
  t.diagnostic(`seed ${SEED} (rerun with WEFT_TEST_SEED=${SEED})`);
  return new Rng(seed);
}

function fail(what: string): never {
  assert.fail(`${what} [WEFT_TEST_SEED=${SEED}]`);
}

// ---------------------------------------------------------------------------
// Reference arithmetic
// ---------------------------------------------------------------------------

const hex = (n: number, w = 4): string => `0x${n.toString(16).padStart(w, '0')}`;

/** RFC 1071 checksum of a byte range: 0xffff minus its one's complement sum. */
function refChecksum(bytes: Uint8Array, start: number, end: number): number {
  return 0xffff - ones(wordSum(bytes, start, end));
}

const ipHeaderLength = (p: Uint8Array): number => (p[0] % 16) * 4;

function ipHeaderValid(p: Uint8Array): boolean {
  return ones(wordSum(p, 0, ipHeaderLength(p))) === 0xffff;
}

function setIpChecksum(p: Uint8Array): void {
  put16(p, 10, 0);
  put16(p, 10, refChecksum(p, 0, ipHeaderLength(p)));
}

/** Pseudo-header (addresses, protocol, L4 length) as a plain sum. */
function pseudoSum(p: Uint8Array, proto: number, l4len: number): number {
  return wordSum(p, 12, 20) + proto + l4len;
}

const l4ChecksumOffset = (proto: number): number => (proto === IPPROTO_TCP ? 16 : proto === IPPROTO_UDP ? 6 : 2);

/** The L4 checksum the packet should carry (TCP/UDP/ICMP), computed with its field taken as 0; UDP's 0 is sent as 0xffff. */
function refL4Checksum(p: Uint8Array): number {
  const ihl = ipHeaderLength(p);
  const proto = p[9];
  const field = ihl + l4ChecksumOffset(proto);
  const pseudo = proto === IPPROTO_ICMP ? 0 : pseudoSum(p, proto, p.length - ihl);
  const c = 0xffff - ones(pseudo + wordSum(p, ihl, p.length) - u16(p, field));
  return proto === IPPROTO_UDP && c === 0 ? 0xffff : c;
}

function setL4Checksum(p: Uint8Array): void {
  put16(p, ipHeaderLength(p) + l4ChecksumOffset(p[9]), refL4Checksum(p));
}

/** Whether the packet's TCP/UDP/ICMP checksum verifies (a UDP checksum of 0 means "none" and counts as valid only when allowZeroUdp). */
function l4ChecksumValid(p: Uint8Array, allowZeroUdp = true): boolean {
  const ihl = ipHeaderLength(p);
  const proto = p[9];
  if (proto === IPPROTO_UDP && u16(p, ihl + 6) === 0) return allowZeroUdp;
  const pseudo = proto === IPPROTO_ICMP ? 0 : pseudoSum(p, proto, p.length - ihl);
  return ones(pseudo + wordSum(p, ihl, p.length)) === 0xffff;
}

// ---------------------------------------------------------------------------
// Packet builders
// ---------------------------------------------------------------------------

/** The NS/AE bit: bit 8 of the 12-bit flags field (low bit of byte 12). */
const TCP_NS = 0x100;

const GSO_MAX_SEGS = 128;
const GRO_MAX_SEGS = 64;

interface TcpFields {
  readonly sport: number;
  readonly dport: number;
  readonly seq: number;
  readonly ack: number;
  /** The 12 flag bits (NS in bit 8). */
  readonly flags: number;
  readonly window: number;
  readonly urgent?: number;
  readonly options?: Uint8Array;
}

/** Writes a TCP header (checksum 0) at `off`; returns its length. */
function writeTcpHeader(b: Uint8Array, off: number, f: TcpFields): number {
  const options = f.options ?? new Uint8Array(0);
  const len = 20 + options.length;
  put16(b, off, f.sport);
  put16(b, off + 2, f.dport);
  put32(b, off + 4, f.seq);
  put32(b, off + 8, f.ack);
  b[off + 12] = (len / 4) * 16 + (Math.floor(f.flags / 256) % 16);
  b[off + 13] = f.flags % 256;
  put16(b, off + 14, f.window);
  put16(b, off + 16, 0);
  put16(b, off + 18, f.urgent ?? 0);
  b.set(options, off + 20);
  return len;
}

/** Writes a UDP header (checksum 0) at `off`; returns 8. */
function writeUdpHeader(b: Uint8Array, off: number, sport: number, dport: number, length: number): number {
  put16(b, off, sport);
  put16(b, off + 2, dport);
  put16(b, off + 4, length);
  put16(b, off + 6, 0);
  return 8;
}

interface IpFields {
  readonly src: number;
  readonly dst: number;
  readonly tos: number;
  readonly ttl: number;
  readonly id: number;
  /** Flags + fragment offset word (0x4000 = DF). */
  readonly frag: number;
  readonly options?: Uint8Array;
}

/** How the L4 checksum field is left: a full checksum, the pseudo-header sum (NEEDS_CSUM), or a given value. */
type CsumMode = 'full' | 'pseudo' | number;

function finishL4(p: Uint8Array, mode: CsumMode): void {
  const ihl = ipHeaderLength(p);
  const field = ihl + l4ChecksumOffset(p[9]);
  if (mode === 'full') setL4Checksum(p);
  else if (mode === 'pseudo') put16(p, field, ones(pseudoSum(p, p[9], p.length - ihl)));
  else put16(p, field, mode);
}

function buildIp(ip: IpFields, proto: number, l4len: number): { p: Uint8Array; ihl: number } {
  const opts = ip.options ?? new Uint8Array(0);
  const ihl = 20 + opts.length;
  const p = new Uint8Array(ihl + l4len);
  writeIpv4Header(p, 0, {
    tos: ip.tos, totalLength: p.length, id: ip.id, flagsFragment: ip.frag, ttl: ip.ttl, protocol: proto, src: ip.src, dst: ip.dst,
  });
  if (opts.length > 0) {
    p[0] = 0x40 + ihl / 4;
    p.set(opts, 20);
    setIpChecksum(p);
  }
  return { p, ihl };
}

function buildTcp(ip: IpFields, tcp: TcpFields, payload: Uint8Array, csum: CsumMode = 'full'): Uint8Array {
  const thl = 20 + (tcp.options?.length ?? 0);
  const { p, ihl } = buildIp(ip, IPPROTO_TCP, thl + payload.length);
  writeTcpHeader(p, ihl, tcp);
  p.set(payload, ihl + thl);
  finishL4(p, csum);
  return p;
}

function buildUdp(ip: IpFields, sport: number, dport: number, payload: Uint8Array, csum: CsumMode = 'full'): Uint8Array {
  const { p, ihl } = buildIp(ip, IPPROTO_UDP, 8 + payload.length);
  writeUdpHeader(p, ihl, sport, dport, 8 + payload.length);
  p.set(payload, ihl + 8);
  finishL4(p, csum);
  return p;
}

function buildIcmpEcho(ip: IpFields, payload: Uint8Array): Uint8Array {
  const { p, ihl } = buildIp(ip, IPPROTO_ICMP, 8 + payload.length);
  p[ihl] = 8;
  put16(p, ihl + 4, 0x1234);
  put16(p, ihl + 6, 1);
  p.set(payload, ihl + 8);
  setL4Checksum(p);
  return p;
}


function concat(parts: readonly Uint8Array[], leading = 0): Uint8Array {
  let n = leading;
  for (const p of parts) n += p.length;
  const out = new Uint8Array(n);
  let at = leading;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out.subarray(leading);
}

const view = (a: Uint8Array): Buffer => Buffer.from(a.buffer, a.byteOffset, a.length);

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && view(a).equals(view(b));
}

/** Names the header field at byte `i` of an IPv4 packet, for failure messages. */
function fieldAt(p: Uint8Array, i: number): string {
  const ihl = ipHeaderLength(p);
  const ipNames: Record<number, string> = {
    0: 'version/IHL', 1: 'TOS', 2: 'total length', 3: 'total length', 4: 'IP id', 5: 'IP id', 6: 'flags/fragment',
    7: 'flags/fragment', 8: 'TTL', 9: 'protocol', 10: 'IP checksum', 11: 'IP checksum',
  };
  if (i < 12) return ipNames[i] as string;
  if (i < 20) return 'addresses';
  if (i < ihl) return 'IP options';
  const l = i - ihl;
  if (p[9] === IPPROTO_TCP) {
    const thl = Math.floor(p[ihl + 12] / 16) * 4;
    const tcpNames = ['sport', 'sport', 'dport', 'dport', 'seq', 'seq', 'seq', 'seq', 'ack', 'ack', 'ack', 'ack',
      'data offset/NS', 'TCP flags', 'window', 'window', 'TCP checksum', 'TCP checksum', 'urgent', 'urgent'];
    if (l < 20) return tcpNames[l] as string;
    if (l < thl) return 'TCP options';
    return `payload byte ${l - thl}`;
  }
  if (p[9] === IPPROTO_UDP) {
    return l < 8 ? (['sport', 'sport', 'dport', 'dport', 'UDP length', 'UDP length', 'UDP checksum', 'UDP checksum'][l] as string)
      : `payload byte ${l - 8}`;
  }
  return `L4 byte ${l}`;
}

function describeDiff(got: Uint8Array, want: Uint8Array, skipVnet = 0): string {
  if (got.length !== want.length) return `length ${got.length}, expected ${want.length}`;
  for (let i = 0; i < got.length; i++) {
    if (got[i] !== want[i]) {
      const where = i < skipVnet ? `vnet header byte ${i}` : fieldAt(want.subarray(skipVnet), i - skipVnet);
      return `byte ${i} (${where}) is ${hex(got[i], 2)}, expected ${hex(want[i], 2)}`;
    }
  }
  return 'equal';
}

// ---------------------------------------------------------------------------
// Reference GSO split
// ---------------------------------------------------------------------------

/**
 * Splits a super-packet as the kernel's GSO would: segments of at most
 * gsoSize payload bytes, each with its own total length, IP id (+k), header
 * checksum, TCP sequence number (+k*gsoSize), FIN/PSH only on the last and
 * CWR only on the first segment (or UDP length), and a full L4 checksum.
 * Returns null for what cannot be split: not IPv4, a fragment, a gso type
 * other than TCPV4 (with or without ECN) or UDP_L4, a protocol that does not
 * match the gso type, truncated headers, gso size 0, more than 128 segments.
 */
function refSplit(v: Vnet, pkt: Uint8Array): Uint8Array[] | null {
  const len = pkt.length;
  if (len < 20 || pkt[0] >> 4 !== 4) return null;
  const ihl = ipHeaderLength(pkt);
  if (ihl < 20 || ihl > len) return null;
  if ((pkt[6] & 0x20) !== 0 || ((pkt[6] & 0x1f) | pkt[7]) !== 0) return null; // MF or a fragment offset
  const kind = v.gsoType & ~GSO_ECN;
  let l4hdr: number;
  if (kind === GSO_TCPV4) {
    if (pkt[9] !== IPPROTO_TCP || ihl + 20 > len) return null;
    l4hdr = (pkt[ihl + 12] >> 4) * 4;
    if (l4hdr < 20) return null;
  } else if (kind === GSO_UDP_L4) {
    if (pkt[9] !== IPPROTO_UDP) return null;
    l4hdr = 8;
  } else {
    return null;
  }
  const hdrLen = ihl + l4hdr;
  if (hdrLen > len) return null;
  const mss = v.gsoSize;
  if (mss === 0) return null;
  const payload = len - hdrLen;
  const nseg = payload === 0 ? 1 : Math.ceil(payload / mss);
  if (nseg > GSO_MAX_SEGS) return null;
  const id = u16(pkt, 4);
  const out: Uint8Array[] = [];
  for (let k = 0; k < nseg; k++) {
    const start = k * mss;
    const plen = Math.min(mss, payload - start);
    const seg = new Uint8Array(hdrLen + plen);
    seg.set(pkt.subarray(0, hdrLen));
    seg.set(pkt.subarray(hdrLen + start, hdrLen + start + plen), hdrLen);
    put16(seg, 2, seg.length);
    put16(seg, 4, (id + k) % 65536);
    if (kind === GSO_TCPV4) {
      put32(seg, ihl + 4, (u32(pkt, ihl + 4) + k * mss) % 0x1_0000_0000);
      let flags = seg[ihl + 13];
      if (k !== nseg - 1) flags &= ~(TCP_FIN | TCP_PSH);
      if (k !== 0) flags &= ~TCP_CWR;
      seg[ihl + 13] = flags;
    } else {
      put16(seg, ihl + 4, 8 + plen);
    }
    setL4Checksum(seg);
    setIpChecksum(seg);
    out.push(seg);
  }
  return out;
}

/** Independent checks of one produced segment against the super-packet it came from. */
function checkSegment(seg: Uint8Array, k: number, nseg: number, v: Vnet, pkt: Uint8Array, what: string): void {
  const ihl = ipHeaderLength(pkt);
  const tcp = pkt[9] === IPPROTO_TCP;
  const hdrLen = ihl + (tcp ? (pkt[ihl + 12] >> 4) * 4 : 8);
  const mss = v.gsoSize;
  const payload = pkt.length - hdrLen;
  const plen = Math.min(mss, payload - k * mss);
  if (seg.length !== hdrLen + plen) fail(`${what}: segment ${k} has ${seg.length} bytes, expected ${hdrLen + plen}`);
  if (u16(seg, 2) !== seg.length) fail(`${what}: segment ${k} total length ${u16(seg, 2)} != ${seg.length}`);
  if (u16(seg, 4) !== (u16(pkt, 4) + k) % 65536) fail(`${what}: segment ${k} IP id ${hex(u16(seg, 4))}, expected id+${k}`);
  if (!ipHeaderValid(seg)) fail(`${what}: segment ${k} IP header checksum invalid`);
  for (let i = 0; i < ihl; i++) {
    if (i === 2 || i === 3 || i === 4 || i === 5 || i === 10 || i === 11) continue;
    if (seg[i] !== pkt[i]) fail(`${what}: segment ${k} IP header byte ${i} (${fieldAt(pkt, i)}) changed`);
  }
  if (!l4ChecksumValid(seg, false)) fail(`${what}: segment ${k} ${tcp ? 'TCP' : 'UDP'} checksum does not verify`);
  if (tcp) {
    const seq = (u32(pkt, ihl + 4) + k * mss) % 0x1_0000_0000;
    if (u32(seg, ihl + 4) !== seq) fail(`${what}: segment ${k} seq ${u32(seg, ihl + 4)}, expected ${seq}`);
    const f = seg[ihl + 13];
    const orig = pkt[ihl + 13];
    const last = k === nseg - 1;
    const first = k === 0;
    const want = (orig & ~(TCP_FIN | TCP_PSH | TCP_CWR)) | (last ? orig & (TCP_FIN | TCP_PSH) : 0) | (first ? orig & TCP_CWR : 0);
    if (f !== want) fail(`${what}: segment ${k}/${nseg} flags ${hex(f, 2)}, expected ${hex(want, 2)}`);
    for (let i = ihl; i < hdrLen; i++) {
      const l = i - ihl;
      if ((l >= 4 && l < 8) || l === 13 || l === 16 || l === 17) continue;
      if (seg[i] !== pkt[i]) fail(`${what}: segment ${k} TCP header byte ${l} (${fieldAt(pkt, i)}) changed`);
    }
  } else {
    if (u16(seg, ihl + 4) !== 8 + plen) fail(`${what}: segment ${k} UDP length ${u16(seg, ihl + 4)}, expected ${8 + plen}`);
    if (u16(seg, ihl) !== u16(pkt, ihl) || u16(seg, ihl + 2) !== u16(pkt, ihl + 2)) fail(`${what}: segment ${k} UDP ports changed`);
  }
  const src = pkt.subarray(hdrLen + k * mss, hdrLen + k * mss + plen);
  if (!equalBytes(seg.subarray(hdrLen), src)) fail(`${what}: segment ${k} payload differs from the super-packet's slice`);
}

// ---------------------------------------------------------------------------
// Reference GRO coalescer (the rules of offload.h, weft_gro_plan)
// ---------------------------------------------------------------------------

const GRO_TCP = 1;
const GRO_UDP = 2;
const IP_MAX = 65535;

interface Mergeable {
  readonly proto: number;
  readonly l4hdr: number;
  readonly payload: number;
}

/**
 * A packet that may take part in a merge: IPv4 without options whose total
 * length is its length and whose header checksum verifies, not a fragment
 * and with no IP flag but DF, TCP (with GRO_TCP) whose 12 flag bits
 * are exactly ACK or ACK|PSH, or UDP (with GRO_UDP) whose UDP length is right;
 * a non-empty payload; a valid L4 checksum (a UDP checksum of 0 is "none").
 */
function refMergeable(p: Uint8Array, flags: number): Mergeable | undefined {
  if (p.length < 28 || p[0] !== 0x45 || u16(p, 2) !== p.length || !ipHeaderValid(p)) return undefined;
  if ((p[6] & 0xbf) !== 0 || p[7] !== 0) return undefined; // MF, an offset or the reserved flag: only DF may be set
  let l4hdr: number;
  if (p[9] === IPPROTO_TCP && (flags & GRO_TCP) !== 0) {
    if (p.length < 40) return undefined;
    l4hdr = (p[32] >> 4) * 4;
    if (l4hdr < 20 || 20 + l4hdr > p.length) return undefined;
    const tcpFlags = (p[32] & 0x0f) * 256 + p[33];
    if (tcpFlags !== TCP_ACK && tcpFlags !== (TCP_ACK | TCP_PSH)) return undefined;
  } else if (p[9] === IPPROTO_UDP && (flags & GRO_UDP) !== 0) {
    if (u16(p, 24) !== p.length - 20) return undefined;
    l4hdr = 8;
  } else {
    return undefined;
  }
  const payload = p.length - 20 - l4hdr;
  if (payload === 0 || !l4ChecksumValid(p)) return undefined;
  return { proto: p[9], l4hdr, payload };
}

const sameBytes = (a: Uint8Array, b: Uint8Array, from: number, to: number): boolean => {
  for (let i = from; i < to; i++) if (a[i] !== b[i]) return false;
  return true;
};

/** Same flow and same everything that a merged header has only once (TCP: urgent pointer too). */
function refSameFlow(p: Uint8Array, q: Uint8Array): boolean {
  const tos = p[1] === q[1];
  const ttl = p[8] === q[8];
  const df = (p[6] & 0x40) === (q[6] & 0x40);
  const addresses = sameBytes(p, q, 12, 20);
  const ports = u16(p, 20) === u16(q, 20) && u16(p, 22) === u16(q, 22);
  if (!(tos && ttl && df && addresses && ports && p[9] === q[9])) return false;
  if (p[9] !== IPPROTO_TCP) return true;
  const thl = (p[32] >> 4) * 4;
  return (q[32] >> 4) * 4 === thl && u32(p, 28) === u32(q, 28) && u16(p, 34) === u16(q, 34) && u16(p, 38) === u16(q, 38)
    && sameBytes(p, q, 40, 20 + thl);
}

/**
 * The IP ID rule for the packet at position k of a group headed by p: without
 * DF it must be p's ID + k (mod 2^16), what the kernel's resegmentation gives
 * it back; with DF (an atomic datagram, RFC 6864) any ID merges.
 */
function refIdFollows(p: Uint8Array, q: Uint8Array, k: number): boolean {
  return (p[6] & 0x40) !== 0 || u16(q, 4) === (u16(p, 4) + k) % 0x10000;
}

interface Group {
  readonly first: number;
  readonly count: number;
}

/**
 * Plans the writes: a group is a run of consecutive packets of one flow that
 * can be merged; it grows while it has fewer than 64 packets, its last packet
 * had no PSH and was not shorter than the first, and the next packet is
 * mergeable, of the same flow, with the IP ID that follows (without DF), no
 * longer than the first, keeps the whole under 65535 bytes and (TCP) starts
 * where the group's data ends.
 */
function refPlan(pkts: readonly Uint8Array[], flags: number, why?: Map<string, number>): Group[] {
  const stop = (reason: string): void => {
    why?.set(reason, (why.get(reason) ?? 0) + 1);
  };
  const groups: Group[] = [];
  let i = 0;
  while (i < pkts.length) {
    const head = pkts[i] as Uint8Array;
    const m = flags === 0 ? undefined : refMergeable(head, flags);
    let count = 1;
    if (m !== undefined) {
      const tcp = m.proto === IPPROTO_TCP;
      let bytes = m.payload;
      let lastLen = m.payload;
      let seqEnd = tcp ? (u32(head, 24) + m.payload) % 0x1_0000_0000 : 0;
      let pushed = tcp && (head[33] & TCP_PSH) !== 0;
      for (let j = i + 1; ; j++) {
        if (j === pkts.length) { stop('end of batch'); break; }
        if (count === GRO_MAX_SEGS) { stop('64 segments'); break; }
        if (pushed) { stop('PSH'); break; }
        if (lastLen < m.payload) { stop('short segment'); break; }
        const q = pkts[j] as Uint8Array;
        const mq = refMergeable(q, flags);
        if (mq === undefined) { stop('next not mergeable'); break; }
        if (mq.proto !== m.proto || !refSameFlow(head, q)) { stop('next of another flow'); break; }
        if (!refIdFollows(head, q, count)) { stop('IP id'); break; }
        if (mq.payload > m.payload) { stop('next longer'); break; }
        if (20 + m.l4hdr + bytes + mq.payload > IP_MAX) { stop('65535 bytes'); break; }
        if (tcp) {
          if (u32(q, 24) !== seqEnd) { stop('sequence gap'); break; }
          seqEnd = (seqEnd + mq.payload) % 0x1_0000_0000;
          pushed = (q[33] & TCP_PSH) !== 0;
        }
        bytes += mq.payload;
        lastLen = mq.payload;
        count++;
      }
    }
    groups.push({ first: i, count });
    i += count;
  }
  return groups;
}

/** The bytes of one TUN write (vnet header + packet) for a planned group. */
function refWrite(pkts: readonly Uint8Array[], g: Group): Uint8Array {
  const head = pkts[g.first] as Uint8Array;
  if (g.count === 1) return concat([new Uint8Array(VNET_LEN), head]);
  const tcp = head[9] === IPPROTO_TCP;
  const l4hdr = tcp ? (head[32] >> 4) * 4 : 8;
  const hdr = head.slice(0, 20 + l4hdr);
  const payloads: Uint8Array[] = [];
  for (let k = 0; k < g.count; k++) payloads.push((pkts[g.first + k] as Uint8Array).subarray(20 + l4hdr));
  const total = payloads.reduce((n, p) => n + p.length, 0);
  put16(hdr, 2, 20 + l4hdr + total);
  setIpChecksum(hdr);
  if (tcp) {
    if (((pkts[g.first + g.count - 1] as Uint8Array)[33] & TCP_PSH) !== 0) hdr[33] |= TCP_PSH;
  } else {
    put16(hdr, 24, 8 + total);
  }
  put16(hdr, 20 + l4ChecksumOffset(hdr[9]), ones(pseudoSum(hdr, hdr[9], l4hdr + total)));
  const vnet = encodeVnet({
    flags: NEEDS_CSUM, gsoType: tcp ? GSO_TCPV4 : GSO_UDP_L4, hdrLen: 20 + l4hdr,
    gsoSize: head.length - 20 - l4hdr,
    csumStart: 20, csumOffset: l4ChecksumOffset(hdr[9]),
  });
  return concat([vnet, hdr, ...payloads]);
}

// ---------------------------------------------------------------------------
// Random super-packets
// ---------------------------------------------------------------------------

function randomIpOptions(r: Rng): Uint8Array {
  if (!r.chance(0.15)) return new Uint8Array(0);
  const words = r.int(1, 10);
  const o = r.bytes(words * 4);
  return o;
}

function randomSeq(r: Rng): number {
  return r.chance(0.5) ? (0x1_0000_0000 - r.int(1, 200_000)) % 0x1_0000_0000 : r.u32();
}

function randomId(r: Rng): number {
  return r.chance(0.5) ? 0x10000 - r.int(1, 200) : r.below(0x10000);
}

/** A payload length for gso size `mss` that gives at most `maxSegs` segments and fits `room` bytes. */
function randomPayloadLength(r: Rng, mss: number, room: number, maxSegs = GSO_MAX_SEGS): number {
  const max = Math.min(65000, room, maxSegs * mss);
  switch (r.below(7)) {
    case 0: return 0;
    case 1: return r.int(1, Math.min(mss, max)); // one segment
    case 2: { // a multiple of mss
      const n = r.int(1, Math.floor(max / mss));
      return n * mss;
    }
    case 3: { // a 1-byte last segment
      const n = r.int(0, Math.floor((max - 1) / mss));
      return n * mss + 1;
    }
    case 4: return max; // as many as fit
    default: return r.int(0, max);
  }
}

interface SuperPacket {
  readonly vnet: Vnet;
  readonly pkt: Uint8Array;
}

function randomTcpSuper(r: Rng): SuperPacket {
  const ipOpts = randomIpOptions(r);
  const tcpOpts = r.bytes(4 * r.int(0, 10));
  const hdrLen = 20 + ipOpts.length + 20 + tcpOpts.length;
  const mss = r.int(100, 1460);
  const plen = randomPayloadLength(r, mss, IP_MAX - hdrLen);
  const flagChoices = [TCP_ACK, TCP_ACK | TCP_PSH, TCP_ACK | TCP_FIN, TCP_ACK | TCP_PSH | TCP_FIN, TCP_ACK | TCP_CWR,
    TCP_ACK | TCP_CWR | TCP_PSH, TCP_ACK | TCP_CWR | TCP_PSH | TCP_FIN, TCP_ACK | TCP_ECE, TCP_ACK | TCP_ECE | TCP_CWR | TCP_PSH];
  const pkt = buildTcp(
    { src: r.u32(), dst: r.u32(), tos: r.below(256), ttl: r.int(1, 255), id: randomId(r), frag: r.chance(0.6) ? 0x4000 : 0, options: ipOpts },
    { sport: r.below(65536), dport: r.below(65536), seq: randomSeq(r), ack: r.u32(), flags: r.pick(flagChoices), window: r.below(65536), options: tcpOpts },
    r.bytes(plen),
    r.chance(0.8) ? 'pseudo' : r.below(65536),
  );
  const ihl = 20 + ipOpts.length;
  const vnet: Vnet = {
    flags: NEEDS_CSUM, gsoType: GSO_TCPV4 | (r.chance(0.2) ? GSO_ECN : 0),
    hdrLen: r.chance(0.7) ? hdrLen : r.below(65536), // not trusted: recomputed from the headers
    gsoSize: mss, csumStart: ihl, csumOffset: 16,
  };
  return { vnet, pkt };
}

function randomUdpSuper(r: Rng): SuperPacket {
  const ipOpts = randomIpOptions(r);
  const hdrLen = 20 + ipOpts.length + 8;
  const mss = r.int(r.chance(0.3) ? 1 : 100, 1472);
  const plen = randomPayloadLength(r, mss, IP_MAX - hdrLen);
  const pkt = buildUdp(
    { src: r.u32(), dst: r.u32(), tos: r.below(256), ttl: r.int(1, 255), id: randomId(r), frag: r.chance(0.5) ? 0x4000 : 0, options: ipOpts },
    r.below(65536), r.below(65536), r.bytes(plen), r.chance(0.8) ? 'pseudo' : r.below(65536),
  );
  const vnet: Vnet = {
    flags: NEEDS_CSUM, gsoType: GSO_UDP_L4, hdrLen: r.chance(0.7) ? hdrLen : r.below(65536),
    gsoSize: mss, csumStart: 20 + ipOpts.length, csumOffset: 6,
  };
  return { vnet, pkt };
}

/** Calls native gsoSplit with the vnet header in front, at a random (possibly odd) byte offset. */
function nativeSplit(r: Rng, sp: SuperPacket): Buffer[] | null {
  const input = concat([encodeVnet(sp.vnet), sp.pkt], r.below(8));
  return native.gsoSplit(input);
}

function compareSplit(sp: SuperPacket, got: Buffer[] | null, want: Uint8Array[] | null, what: string): void {
  if (want === null) {
    if (got !== null) fail(`${what}: native split ${got.length} segments, the reference refuses the packet`);
    return;
  }
  if (got === null) fail(`${what}: native refused a packet the reference splits into ${want.length} segments`);
  if (got.length !== want.length) fail(`${what}: ${got.length} segments, expected ${want.length}`);
  for (let k = 0; k < want.length; k++) {
    const g = got[k] as Buffer;
    const w = want[k] as Uint8Array;
    if (!equalBytes(g, w)) fail(`${what}: segment ${k}/${want.length}: ${describeDiff(g, w)}`);
    checkSegment(g, k, want.length, sp.vnet, sp.pkt, what);
  }
  const ihl = ipHeaderLength(sp.pkt);
  const hdrLen = ihl + (sp.pkt[9] === IPPROTO_TCP ? (sp.pkt[ihl + 12] >> 4) * 4 : 8);
  const joined = concat(got.map((s) => s.subarray(hdrLen)));
  if (!equalBytes(joined, sp.pkt.subarray(hdrLen))) fail(`${what}: the segments' payloads do not add up to the original payload`);
}

const describeSuper = (sp: SuperPacket): string =>
  `${sp.pkt[9] === IPPROTO_TCP ? 'TCP' : 'UDP'} super-packet of ${sp.pkt.length} bytes, IHL ${ipHeaderLength(sp.pkt)}, gso_type ${sp.vnet.gsoType}, gso_size ${sp.vnet.gsoSize}`;

// ---------------------------------------------------------------------------
// Random flows for GRO
// ---------------------------------------------------------------------------

interface Flow {
  readonly tcp: boolean;
  readonly ip: { src: number; dst: number; tos: number; ttl: number; df: boolean };
  readonly sport: number;
  readonly dport: number;
  mss: number;
  seq: number;
  ack: number;
  window: number;
  id: number;
  tsval: number;
  readonly optKind: 'none' | 'ts' | 'random';
  readonly randomOpts: Uint8Array;
  readonly noUdpChecksum: boolean;
  readonly queue: Uint8Array[];
}

function newFlow(r: Rng, tcp: boolean, shared?: Flow): Flow {
  // some flows share addresses with another and differ only in ports, or only in the protocol
  const ip = shared !== undefined && r.chance(0.5)
    ? { ...shared.ip }
    : { src: r.u32(), dst: r.u32(), tos: r.chance(0.7) ? 0 : r.below(256), ttl: r.int(1, 255), df: r.chance(0.8) };
  const mssChoices = [1448, 1460, 1420, 536, 100, r.int(1, 1460)];
  return {
    tcp, ip,
    sport: shared !== undefined && r.chance(0.3) ? shared.sport : r.below(65536),
    dport: shared !== undefined && r.chance(0.5) ? shared.dport : r.below(65536),
    mss: r.pick(mssChoices), seq: randomSeq(r), ack: r.u32(), window: r.below(65536), id: randomId(r), tsval: r.u32(),
    optKind: r.pick(['none', 'ts', 'ts', 'random'] as const), randomOpts: r.bytes(4 * r.int(1, 10)),
    noUdpChecksum: r.chance(0.15), queue: [],
  };
}

function flowOptions(f: Flow): Uint8Array {
  if (f.optKind === 'none') return new Uint8Array(0);
  if (f.optKind === 'random') return f.randomOpts;
  const o = new Uint8Array(12);
  o[0] = 1;
  o[1] = 1;
  o[2] = 8;
  o[3] = 10;
  put32(o, 4, f.tsval);
  put32(o, 8, 0x01020304);
  return o;
}

function flowIp(f: Flow): IpFields {
  return { src: f.ip.src, dst: f.ip.dst, tos: f.ip.tos, ttl: f.ip.ttl, id: f.id, frag: f.ip.df ? 0x4000 : 0 };
}

/** Appends one burst to the flow's queue: a split super-packet, a pure ACK, a retransmission or a gap. */
function flowBurst(r: Rng, f: Flow): void {
  if (!f.tcp) {
    const n = r.int(1, 80);
    for (let k = 0; k < n; k++) {
      const size = k === n - 1 && r.chance(0.4) ? r.int(1, f.mss) : f.mss;
      const p = buildUdp(flowIp(f), f.sport, f.dport, r.bytes(size), f.noUdpChecksum ? 0 : 'full');
      f.queue.push(p);
      f.id = (f.id + 1) % 65536;
    }
    if (r.chance(0.1)) f.mss = r.int(1, 1472);
    return;
  }
  const kind = r.below(20);
  if (kind === 0) { // a pure ACK
    f.queue.push(buildTcp(flowIp(f), { sport: f.sport, dport: f.dport, seq: f.seq, ack: f.ack, flags: TCP_ACK, window: f.window, options: flowOptions(f) }, new Uint8Array(0)));
    f.id = (f.id + 1) % 65536;
    return;
  }
  if (kind === 1) f.seq = (f.seq + 0x1_0000_0000 - r.int(1, 5000)) % 0x1_0000_0000; // retransmission
  if (kind === 2) f.seq = (f.seq + r.int(1, 5000)) % 0x1_0000_0000; // a hole
  if (kind === 3) f.window = r.below(65536);
  if (kind === 4) f.mss = r.int(1, 1460);
  const opts = flowOptions(f);
  const maxSegs = r.chance(0.2) ? GSO_MAX_SEGS : r.int(1, 20);
  const plen = Math.max(1, randomPayloadLength(r, f.mss, IP_MAX - 40 - opts.length, maxSegs));
  const sp = buildTcp(flowIp(f), {
    sport: f.sport, dport: f.dport, seq: f.seq, ack: f.ack, flags: r.chance(0.4) ? TCP_ACK | TCP_PSH : TCP_ACK, window: f.window, options: opts,
  }, r.bytes(plen), 'pseudo');
  const segs = refSplit({ flags: NEEDS_CSUM, gsoType: GSO_TCPV4, hdrLen: 0, gsoSize: f.mss, csumStart: 20, csumOffset: 16 }, sp);
  assert.ok(segs !== null);
  f.queue.push(...segs);
  f.seq = (f.seq + plen) % 0x1_0000_0000;
  f.id = (f.id + segs.length) % 65536;
  if (r.chance(0.5)) f.ack = (f.ack + r.int(0, 100_000)) % 0x1_0000_0000;
  if (r.chance(0.5)) f.tsval = (f.tsval + 1) % 0x1_0000_0000;
}

/** A one-off packet that must never merge with its neighbours (or is malformed). */
function oddPacket(r: Rng, f: Flow): Uint8Array {
  const ip = flowIp(f);
  const tcpBase = { sport: f.sport, dport: f.dport, seq: f.seq, ack: f.ack, window: f.window, options: flowOptions(f) };
  switch (r.below(7)) {
    case 0: return buildIcmpEcho(ip, r.bytes(r.int(0, 1400)));
    case 1: return buildTcp({ ...ip, options: r.bytes(4) }, { ...tcpBase, flags: TCP_ACK }, r.bytes(f.mss)); // IP options
    case 2: return buildUdp({ ...ip, frag: 0x2000 }, f.sport, f.dport, r.bytes(r.int(1, 1400))); // a first fragment
    case 3: return buildTcp({ ...ip, frag: r.int(1, 0x1fff) }, { ...tcpBase, flags: TCP_ACK }, r.bytes(f.mss)); // a later fragment
    case 4: { // total length field larger than the packet
      const p = buildTcp(ip, { ...tcpBase, flags: TCP_ACK }, r.bytes(f.mss));
      put16(p, 2, p.length + r.int(1, 40));
      setIpChecksum(p);
      return p;
    }
    case 5: return buildUdp(ip, f.sport, f.dport, new Uint8Array(0)); // empty datagram
    default: // SYN, RST, FIN, URG with data
      return buildTcp(ip, { ...tcpBase, flags: TCP_ACK | r.pick([TCP_SYN, TCP_RST, TCP_FIN, TCP_URG]) }, r.bytes(r.int(0, f.mss)));
  }
}

/** Changes a packet in place so that some merge rule applies to it. */
function mutate(r: Rng, p: Uint8Array): void {
  const ihl = ipHeaderLength(p);
  switch (r.below(8)) {
    case 7: // a wrong IP header checksum, left wrong; or the reserved IP flag, checksum right
      if (r.chance(0.3)) {
        p[6] ^= 0x80;
        break;
      }
      p[10 + r.below(2)] ^= r.int(1, 255);
      return;
    case 6: // another IP ID (matters without DF), or (TCP) an urgent pointer without URG
      if (p[9] === IPPROTO_TCP && r.chance(0.3)) {
        put16(p, ihl + 18, r.int(1, 0xffff));
        setL4Checksum(p);
        return;
      }
      put16(p, 4, (u16(p, 4) + r.int(1, 0xffff)) % 0x10000);
      break;
    case 0: { // corrupt the L4 checksum (payload byte or checksum field), leave it wrong
      const i = r.int(ihl, p.length - 1);
      p[i] ^= r.int(1, 255);
      return;
    }
    case 1: p[8] = (p[8] + r.int(1, 255)) % 256; break; // TTL
    case 2: p[1] ^= r.int(1, 255); break; // TOS
    case 3: p[6] ^= 0x40; break; // DF
    case 4: // another flag or a changed window, with a correct checksum
      if (p[9] === IPPROTO_TCP) {
        if (r.chance(0.5)) p[ihl + 13] ^= r.pick([TCP_SYN, TCP_RST, TCP_FIN, TCP_URG, TCP_ECE, TCP_CWR, TCP_PSH]);
        else put16(p, ihl + 14, (u16(p, ihl + 14) + 1) % 65536);
        setL4Checksum(p);
      } else {
        put16(p, ihl + 6, 0); // UDP without checksum: still mergeable
      }
      return;
    default: // an ACK number or timestamp change (TCP), a port change (UDP)
      if (p[9] === IPPROTO_TCP && r.chance(0.5)) put32(p, ihl + 8, (u32(p, ihl + 8) + 1) % 0x1_0000_0000);
      else if (p[9] === IPPROTO_TCP && (p[ihl + 12] >> 4) > 5) p[ihl + 20 + r.below((p[ihl + 12] >> 4) * 4 - 20)] ^= 1;
      else put16(p, ihl, (u16(p, ihl) + 1) % 65536);
      if (!(p[9] === IPPROTO_UDP && u16(p, ihl + 6) === 0)) setL4Checksum(p);
      return;
  }
  setIpChecksum(p);
}

interface GroCase {
  readonly pkts: Uint8Array[];
  readonly flags: number;
}

function randomGroCase(r: Rng, maxPackets: number): GroCase {
  const flags = r.pick([GRO_TCP, GRO_TCP | GRO_UDP, GRO_TCP | GRO_UDP, GRO_UDP, 0]);
  const nflows = r.int(1, 5);
  const flows: Flow[] = [];
  for (let i = 0; i < nflows; i++) flows.push(newFlow(r, r.chance(0.7), flows.length > 0 ? r.pick(flows) : undefined));
  const target = r.int(1, maxPackets);
  const pkts: Uint8Array[] = [];
  const mutateRate = r.pick([0, 0.002, 0.02, 0.1]);
  while (pkts.length < target) {
    const f = r.pick(flows);
    // a run of this flow's packets: short runs interleave flows finely, long ones let groups grow
    const run = r.chance(0.5) ? r.int(1, 3) : r.int(1, 140);
    for (let k = 0; k < run && pkts.length < target; k++) {
      if (f.queue.length === 0) flowBurst(r, f);
      if (r.chance(0.01)) {
        pkts.push(oddPacket(r, f));
        continue;
      }
      const p = f.queue.shift() as Uint8Array;
      if (r.chance(mutateRate)) mutate(r, p);
      pkts.push(p);
      if (r.chance(0.005)) pkts.push(p.slice()); // a duplicate
    }
  }
  return { pkts, flags };
}

/** Runs native groCoalesce over the packets placed in a slab at random offsets. */
function nativeCoalesce(r: Rng, c: GroCase): Buffer[] {
  let size = 0;
  const offsets = new Int32Array(c.pkts.length);
  const lens = new Int32Array(c.pkts.length);
  for (let i = 0; i < c.pkts.length; i++) {
    size += r.below(8);
    offsets[i] = size;
    lens[i] = (c.pkts[i] as Uint8Array).length;
    size += lens[i];
  }
  const slab = new Uint8Array(size);
  for (let i = 0; i < c.pkts.length; i++) slab.set(c.pkts[i] as Uint8Array, offsets[i]);
  return native.groCoalesce(slab, offsets, lens, c.pkts.length, c.flags);
}

/**
 * Checks the native writes for one case: each equals the reference write;
 * merged writes carry the right vnet header, IP length and checksum and the
 * pseudo-header sum in the L4 checksum field; and resegmenting every write
 * as the kernel would gives back the input packets, in order, except for the
 * fields a resegmentation legitimately changes: the IP id of a DF packet (the
 * kernel numbers the segments first id + k; without DF the ids must come back
 * unchanged), hence the IP header checksum, and the UDP checksum of a
 * datagram that had none (NEEDS_CSUM makes the kernel fill it).
 * A packet whose checksum does not verify is always written alone, unchanged.
 */
function checkCoalesce(c: GroCase, writes: Buffer[], what: string, why?: Map<string, number>): { merged: number; mergedUdp: number; segments: number } {
  const plan = refPlan(c.pkts, c.flags, why);
  if (writes.length !== plan.length) {
    const got = writes.map((w) => (w[1] === 0 ? 1 : (refSplit(decodeVnet(w), w.subarray(VNET_LEN)) ?? []).length));
    fail(`${what}: ${writes.length} writes, expected ${plan.length}; native groups ${JSON.stringify(got.slice(0, 40))}, reference ${JSON.stringify(plan.slice(0, 40).map((g) => g.count))}`);
  }
  let merged = 0;
  let mergedUdp = 0;
  let segments = 0;
  let next = 0; // index of the next input packet the writes should reproduce
  for (let w = 0; w < writes.length; w++) {
    const got = writes[w] as Buffer;
    const g = plan[w] as Group;
    const want = refWrite(c.pkts, g);
    if (!equalBytes(got, want)) {
      fail(`${what}: write ${w} (packets ${g.first}..${g.first + g.count - 1}): ${describeDiff(got, want, VNET_LEN)}`);
    }
    const v = decodeVnet(got);
    const pkt = got.subarray(VNET_LEN);
    let resplit: Uint8Array[];
    if (v.gsoType === GSO_NONE) {
      if (!got.subarray(0, VNET_LEN).every((b) => b === 0)) fail(`${what}: write ${w} is a single packet with a non-zero vnet header`);
      resplit = [pkt];
    } else {
      merged++;
      const tcp = pkt[9] === IPPROTO_TCP;
      if (!tcp) mergedUdp++;
      const l4hdr = tcp ? (pkt[32] >> 4) * 4 : 8;
      const wantVnet: Vnet = {
        flags: NEEDS_CSUM, gsoType: tcp ? GSO_TCPV4 : GSO_UDP_L4, hdrLen: 20 + l4hdr,
        gsoSize: (c.pkts[next] as Uint8Array).length - 20 - l4hdr, csumStart: 20, csumOffset: tcp ? 16 : 6,
      };
      if (JSON.stringify(v) !== JSON.stringify(wantVnet)) fail(`${what}: write ${w} vnet header ${JSON.stringify(v)}, expected ${JSON.stringify(wantVnet)}`);
      if (u16(pkt, 2) !== pkt.length) fail(`${what}: write ${w} IP total length ${u16(pkt, 2)} != ${pkt.length}`);
      if (pkt.length > IP_MAX) fail(`${what}: write ${w} is ${pkt.length} bytes`);
      if (!ipHeaderValid(pkt)) fail(`${what}: write ${w} IP header checksum invalid`);
      const field = u16(pkt, 20 + v.csumOffset);
      const pseudo = ones(pseudoSum(pkt, pkt[9], pkt.length - 20));
      if (field !== pseudo) fail(`${what}: write ${w} L4 checksum field ${hex(field)}, expected the pseudo-header sum ${hex(pseudo)}`);
      if (!tcp && u16(pkt, 24) !== pkt.length - 20) fail(`${what}: write ${w} UDP length ${u16(pkt, 24)}`);
      const split = refSplit(v, pkt);
      if (split === null) fail(`${what}: write ${w} cannot be resegmented`);
      if (split.length < 2 || split.length > GRO_MAX_SEGS) fail(`${what}: write ${w} resegments into ${split.length} packets`);
      const again = native.gsoSplit(got);
      if (again === null || again.length !== split.length || again.some((s, k) => !equalBytes(s, split[k] as Uint8Array))) {
        fail(`${what}: write ${w}: native gsoSplit and the reference split disagree on the merged packet`);
      }
      resplit = split;
    }
    for (let k = 0; k < resplit.length; k++) {
      const seg = resplit[k] as Uint8Array;
      const orig = c.pkts[next] as Uint8Array;
      if (orig === undefined) fail(`${what}: the writes hold more packets than the input`);
      const tag = `${what}: write ${w} segment ${k} vs input packet ${next}`;
      if (resplit.length === 1) {
        if (!equalBytes(seg, orig)) fail(`${tag}: a single packet was changed: ${describeDiff(seg, orig)}`);
      } else {
        if (seg.length !== orig.length) fail(`${tag}: ${seg.length} bytes, expected ${orig.length}`);
        // equal but for the IP id (DF only) and the header checksum that follows it, and a UDP checksum that was 0
        const udpNoCsum = orig[9] === IPPROTO_UDP && u16(orig, 26) === 0;
        if ((orig[6] & 0x40) === 0 && u16(seg, 4) !== u16(orig, 4)) {
          fail(`${tag}: IP id ${u16(orig, 4)} of a packet without DF came back as ${u16(seg, 4)}`);
        }
        const same = equalBytes(seg.subarray(0, 4), orig.subarray(0, 4)) && equalBytes(seg.subarray(6, 10), orig.subarray(6, 10))
          && (udpNoCsum
            ? equalBytes(seg.subarray(12, 26), orig.subarray(12, 26)) && equalBytes(seg.subarray(28), orig.subarray(28))
            : equalBytes(seg.subarray(12), orig.subarray(12)));
        if (!same) fail(`${tag}: ${describeDiff(seg, orig)}`);
        if (!l4ChecksumValid(orig)) fail(`${tag}: a packet with a bad checksum was merged`);
      }
      next++;
    }
    segments += resplit.length;
  }
  if (next !== c.pkts.length) fail(`${what}: the writes hold ${next} packets, the input ${c.pkts.length}`);
  // a packet whose checksum is wrong is written alone and unchanged
  let at = 0;
  for (const g of plan) {
    for (let k = 0; k < g.count; k++) {
      const p = c.pkts[at + k] as Uint8Array;
      const checkable = (p[9] === IPPROTO_TCP || p[9] === IPPROTO_UDP) && p[0] === 0x45 && u16(p, 2) === p.length;
      if (checkable && !l4ChecksumValid(p) && g.count !== 1) fail(`${what}: packet ${at + k} has a bad checksum and was merged`);
    }
    at += g.count;
  }
  return { merged, mergedUdp, segments };
}

// ---------------------------------------------------------------------------
// The tests
// ---------------------------------------------------------------------------

describe('offload differential: checksum', () => {
  test('native checksum() equals the reference over random buffers, lengths 0..70000, odd and even offsets', (t) => {
    const r = rngFor(t, 1);
    const pool = r.bytes(140_016);
    const cases = 3000;
    for (let n = 0; n < cases; n++) {
      const len = r.pick([() => r.int(0, 64), () => r.int(0, 2000), () => r.int(0, 70_000), () => 70_000 - r.below(2)])();
      const off = r.below(8);
      let buf: Uint8Array = new Uint8Array(0);
      const pattern = r.below(6);
      // constant patterns get one random byte after the range: reading past the end would show
      if (pattern === 0) buf = new Uint8Array(off + len + 1).fill(0xff);
      else if (pattern === 1) buf = new Uint8Array(off + len + 1);
      else if (pattern === 2) { // mostly 0xff: sums that land on multiples of 0xffff
        buf = new Uint8Array(off + len + 1).fill(0xff);
        for (let i = 0; i < 3; i++) if (len > 0) buf[off + r.below(len)] = r.below(256);
      }
      if (pattern <= 2) buf[off + len] = r.below(256);
      else {
        const start = r.below(pool.length - len - off + 1);
        buf = pool.subarray(start, start + off + len);
      }
      const got = native.checksum(buf, off, len);
      const want = refChecksum(buf, off, off + len);
      if (got !== want) fail(`case ${n}: checksum(len ${len}, off ${off}, pattern ${pattern}) = ${hex(got)}, expected ${hex(want)}`);
    }
    // fixed points: nothing, all zero, all ones, a single odd byte
    assert.equal(native.checksum(new Uint8Array(1), 0, 0), 0xffff);
    assert.equal(native.checksum(new Uint8Array(9), 1, 8), 0xffff);
    assert.equal(native.checksum(new Uint8Array(8).fill(0xff), 0, 8), 0);
    assert.equal(native.checksum(Uint8Array.of(0, 0x12), 1, 1), 0xffff - 0x1200);
    assert.throws(() => native.checksum(new Uint8Array(4), 2, 3), /range outside the buffer/);
    t.diagnostic(`${cases} buffers`);
  });
});

describe('offload differential: csumComplete', () => {
  test('completing the NEEDS_CSUM pseudo-header sum gives a checksum that verifies (TCP and UDP)', (t) => {
    const r = rngFor(t, 2);
    const cases = 4000;
    let forcedZero = 0;
    for (let n = 0; n < cases; n++) {
      const tcp = r.chance(0.5);
      const ipOpts = randomIpOptions(r);
      const plen = r.chance(0.05) ? r.int(0, 65000) : r.int(0, 2000);
      const payload = r.bytes(plen);
      const ip: IpFields = { src: r.u32(), dst: r.u32(), tos: r.below(256), ttl: r.int(1, 255), id: r.below(65536), frag: r.chance(0.5) ? 0x4000 : 0, options: ipOpts };
      const tcpOpts = r.bytes(4 * r.int(0, 10));
      const build = (): Uint8Array => (tcp
        ? buildTcp(ip, { sport: r.below(65536), dport: r.below(65536), seq: r.u32(), ack: r.u32(), flags: TCP_ACK | TCP_PSH, window: r.below(65536), options: tcpOpts }, payload, 'pseudo')
        : buildUdp(ip, r.below(65536), r.below(65536), payload, 'pseudo'));
      const p = build();
      const ihl = ipHeaderLength(p);
      const l4hdr = tcp ? 20 + tcpOpts.length : 8;
      const zeroCase = plen >= 2 && r.chance(0.2);
      if (zeroCase) {
        // choose the first two payload bytes (an even L4 offset) so that the full checksum is 0
        put16(p, ihl + l4hdr, 0);
        const partial = ones(pseudoSum(p, p[9], p.length - ihl) + wordSum(p, ihl, p.length) - u16(p, ihl + l4ChecksumOffset(p[9])));
        put16(p, ihl + l4hdr, 0xffff - partial);
        forcedZero++;
      }
      const before = p.slice();
      const csumOffset = tcp ? 16 : 6;
      const fullBefore = refL4Checksum(p); // what the field should become (UDP 0 already mapped to 0xffff)
      const ok = native.csumComplete(p, ihl, csumOffset);
      if (!ok) fail(`case ${n}: csumComplete refused a valid ${tcp ? 'TCP' : 'UDP'} packet`);
      const field = u16(p, ihl + csumOffset);
      if (!l4ChecksumValid(p, false)) fail(`case ${n}: completed ${tcp ? 'TCP' : 'UDP'} checksum ${hex(field)} does not verify`);
      if (zeroCase && !tcp && field !== 0xffff) fail(`case ${n}: a UDP checksum of 0 must be sent as 0xffff, got ${hex(field)}`);
      // TCP: 0 and 0xffff are the same one's complement value; the C writes 0xffff, Linux writes 0: both verify
      const acceptable = field === fullBefore || (tcp && fullBefore === 0 && field === 0xffff);
      if (!acceptable) fail(`case ${n}: checksum ${hex(field)}, expected ${hex(fullBefore)}`);
      for (let i = 0; i < p.length; i++) {
        if (i !== ihl + csumOffset && i !== ihl + csumOffset + 1 && p[i] !== before[i]) fail(`case ${n}: byte ${i} changed`);
      }
    }
    assert.ok(forcedZero > 100, `only ${forcedZero} zero-checksum cases`);
    t.diagnostic(`${cases} packets, ${forcedZero} whose checksum is 0`);
  });

  test('offsets that do not fit the packet, or an odd csum_start, are refused and change nothing', (t) => {
    const r = rngFor(t, 3);
    for (let n = 0; n < 500; n++) {
      const len = r.int(1, 200); // an empty array is refused outright: see the test below
      const p = r.bytes(len);
      const before = p.slice();
      const start = r.chance(0.5) ? r.int(0, len + 10) : r.int(0, 10) * 2 + 1;
      const offset = r.int(0, 60);
      const fits = start + offset + 2 <= len && start % 2 === 0;
      const ok = native.csumComplete(p, start, offset);
      if (ok !== fits) fail(`case ${n}: csumComplete(len ${len}, start ${start}, offset ${offset}) = ${ok}, expected ${fits}`);
      if (!ok && !equalBytes(p, before)) fail(`case ${n}: a refused call changed the packet`);
    }
  });
});

describe('offload: empty arrays', () => {
  test('checksum() and csumComplete() accept a zero-length Uint8Array', () => {
    assert.equal(native.checksum(new Uint8Array(0), 0, 0), 0xffff);
    assert.equal(native.csumComplete(new Uint8Array(0), 0, 0), false);
  });
});

describe('offload differential: gsoSplit', () => {
  test('random TCP super-packets split exactly as the reference does', (t) => {
    const r = rngFor(t, 4);
    const cases = 1500;
    let segs = 0;
    for (let n = 0; n < cases; n++) {
      const sp = randomTcpSuper(r);
      const want = refSplit(sp.vnet, sp.pkt);
      assert.ok(want !== null, 'the generator makes splittable packets');
      compareSplit(sp, nativeSplit(r, sp), want, `case ${n}: ${describeSuper(sp)}`);
      segs += want.length;
    }
    t.diagnostic(`${cases} super-packets, ${segs} segments`);
  });

  test('random UDP super-packets (gso_type UDP_L4) split exactly as the reference does', (t) => {
    const r = rngFor(t, 5);
    const cases = 1000;
    let segs = 0;
    for (let n = 0; n < cases; n++) {
      const sp = randomUdpSuper(r);
      const want = refSplit(sp.vnet, sp.pkt);
      assert.ok(want !== null);
      compareSplit(sp, nativeSplit(r, sp), want, `case ${n}: ${describeSuper(sp)}`);
      segs += want.length;
    }
    t.diagnostic(`${cases} super-packets, ${segs} segments`);
  });

  test('odd sizes: remainders, odd gso_size, a 1-byte last segment, exactly 128 segments, gso_size 1', (t) => {
    const r = rngFor(t, 6);
    const shapes: Array<[mss: number, payload: number]> = [
      [1448, 1448 * 3 + 1], [1447, 1447 * 5], [1447, 1447 * 5 + 1], [101, 101 * 128], [101, 101 * 127 + 1],
      [1, 128], [1, 127], [3, 1], [1460, 0], [1460, 1], [1460, 1459], [1460, 1461], [511, 65000], [65535, 65000],
    ];
    for (const [mss, payload] of shapes) {
      for (const tcp of [true, false]) {
        for (let rep = 0; rep < 10; rep++) {
          const ip: IpFields = { src: r.u32(), dst: r.u32(), tos: r.below(256), ttl: r.int(1, 255), id: randomId(r), frag: 0x4000 };
          const pkt = tcp
            ? buildTcp(ip, { sport: 1, dport: 2, seq: randomSeq(r), ack: r.u32(), flags: TCP_ACK | TCP_PSH | TCP_FIN | TCP_CWR, window: 100, options: r.bytes(12) }, r.bytes(payload), 'pseudo')
            : buildUdp(ip, 3, 4, r.bytes(payload), 'pseudo');
          const sp: SuperPacket = { vnet: { flags: NEEDS_CSUM, gsoType: tcp ? GSO_TCPV4 : GSO_UDP_L4, hdrLen: 0, gsoSize: mss, csumStart: 20, csumOffset: tcp ? 16 : 6 }, pkt };
          const want = refSplit(sp.vnet, pkt);
          assert.ok(want !== null);
          compareSplit(sp, nativeSplit(r, sp), want, `${describeSuper(sp)}, payload ${payload}`);
          const lastLen = payload - (want.length - 1) * mss;
          assert.equal(want.length, payload === 0 ? 1 : Math.ceil(payload / mss));
          if (payload > 0) assert.ok(lastLen >= 1 && lastLen <= mss);
        }
      }
    }
  });

  test('packets that cannot be split give null', (t) => {
    const r = rngFor(t, 7);
    const kinds = ['ipv6', 'version', 'ihl<5', 'ihl>len', 'mf', 'fragment offset', 'wrong protocol', 'icmp', 'gso_size 0',
      'over 128 segments', 'short ip', 'truncated tcp', 'tcp doff<5', 'tcp options beyond the end', 'truncated udp'] as const;
    const counts = new Map<string, number>();
    for (let n = 0; n < 1500; n++) {
      const kind = r.pick(kinds);
      const sp = r.chance(0.5) ? randomTcpSuper(r) : randomUdpSuper(r);
      let pkt: Uint8Array = sp.pkt.slice();
      let vnet = sp.vnet;
      const tcp = pkt[9] === IPPROTO_TCP;
      const ihl = ipHeaderLength(pkt);
      switch (kind) {
        case 'ipv6': pkt[0] = 0x60 | (pkt[0] & 0x0f); break;
        case 'version': pkt[0] = (r.pick([0, 1, 5, 7, 15]) << 4) | (pkt[0] & 0x0f); break;
        case 'ihl<5': pkt[0] = 0x40 | r.int(0, 4); break;
        case 'ihl>len': pkt = pkt.slice(0, r.int(20, Math.min(pkt.length, 59))); pkt[0] = 0x40 | Math.min(15, Math.floor(pkt.length / 4) + 1); break;
        case 'mf': pkt[6] |= 0x20; break;
        case 'fragment offset': put16(pkt, 6, (u16(pkt, 6) & 0xe000) | r.int(1, 0x1fff)); break;
        case 'wrong protocol': pkt[9] = tcp ? IPPROTO_UDP : IPPROTO_TCP; break;
        case 'icmp': pkt[9] = IPPROTO_ICMP; break;
        case 'gso_size 0': vnet = { ...vnet, gsoSize: 0 }; break;
        case 'over 128 segments': {
          const hdrLen = ihl + (tcp ? (pkt[ihl + 12] >> 4) * 4 : 8);
          const mss = r.int(1, Math.floor((IP_MAX - hdrLen - 1) / 129));
          const payload = r.int(128 * mss + 1, Math.min(IP_MAX - hdrLen, 200 * mss));
          pkt = concat([pkt.subarray(0, hdrLen), r.bytes(payload)]);
          put16(pkt, 2, pkt.length);
          vnet = { ...vnet, gsoSize: mss };
          break;
        }
        case 'short ip': pkt = pkt.slice(0, r.int(0, 19)); break;
        case 'truncated tcp': pkt = sp.pkt.slice(0, ihl + r.int(0, 19)); pkt[9] = IPPROTO_TCP; vnet = { ...vnet, gsoType: GSO_TCPV4 }; break;
        case 'tcp doff<5': pkt = concat([sp.pkt, new Uint8Array(Math.max(0, ihl + 20 - sp.pkt.length))]); pkt[9] = IPPROTO_TCP; pkt[ihl + 12] = (r.int(0, 4) << 4) | (pkt[ihl + 12] & 0xf); vnet = { ...vnet, gsoType: GSO_TCPV4 }; break;
        case 'tcp options beyond the end': {
          const thl = r.int(6, 15) * 4;
          pkt = concat([sp.pkt.subarray(0, ihl), r.bytes(r.int(20, thl - 1))]);
          pkt[9] = IPPROTO_TCP;
          pkt[ihl + 12] = ((thl / 4) << 4);
          vnet = { ...vnet, gsoType: GSO_TCPV4 };
          break;
        }
        case 'truncated udp': pkt = sp.pkt.slice(0, ihl + r.int(0, 7)); pkt[9] = IPPROTO_UDP; vnet = { ...vnet, gsoType: GSO_UDP_L4 }; break;
      }
      if (pkt.length >= 20 && ipHeaderLength(pkt) >= 20 && ipHeaderLength(pkt) <= pkt.length) setIpChecksum(pkt);
      const bad: SuperPacket = { vnet, pkt };
      const want = refSplit(vnet, pkt);
      if (want !== null) fail(`case ${n} (${kind}): the reference splits it`);
      compareSplit(bad, nativeSplit(r, bad), null, `case ${n} (${kind}): ${describeSuper(bad)}`);
      counts.set(kind, (counts.get(kind) ?? 0) + 1);
    }
    assert.equal(counts.size, kinds.length, 'every kind was tried');
    t.diagnostic(JSON.stringify(Object.fromEntries(counts)));
  });

  test('gso types other than TCPV4 and UDP_L4 give null', (t) => {
    const r = rngFor(t, 8);
    for (const gsoType of [GSO_NONE, GSO_UDP, GSO_TCPV6, 2, 6, 0x7f]) {
      const sp = randomUdpSuper(r);
      const bad: SuperPacket = { vnet: { ...sp.vnet, gsoType }, pkt: sp.pkt };
      compareSplit(bad, nativeSplit(r, bad), refSplit(bad.vnet, bad.pkt), `gso_type ${gsoType}`);
    }
  });
});

describe('offload differential: groCoalesce', () => {
  test('mixed flows: native writes equal the reference plan, and resegment into the input packets', (t) => {
    const r = rngFor(t, 9);
    const cases = 1200;
    let packets = 0;
    let writes = 0;
    let merged = 0;
    let mergedUdp = 0;
    const why = new Map<string, number>();
    for (let n = 0; n < cases; n++) {
      const c = randomGroCase(r, n % 25 === 0 ? 2500 : 200);
      const got = nativeCoalesce(r, c);
      const s = checkCoalesce(c, got, `case ${n} (flags ${c.flags}, ${c.pkts.length} packets)`, why);
      packets += c.pkts.length;
      writes += got.length;
      merged += s.merged;
      mergedUdp += s.mergedUdp;
    }
    assert.ok(merged > cases, `only ${merged} merged writes: the generator does not exercise merging`);
    assert.ok(mergedUdp > cases / 10 && merged - mergedUdp > cases, `merged writes: ${merged - mergedUdp} TCP, ${mergedUdp} UDP`);
    t.diagnostic(`${cases} batches, ${packets} packets, ${writes} writes, ${merged} merged (${merged - mergedUdp} TCP, ${mergedUdp} UDP)`);
    t.diagnostic(`why groups ended: ${JSON.stringify(Object.fromEntries([...why].sort()))}`);
    for (const reason of ['end of batch', '64 segments', 'PSH', 'short segment', 'next not mergeable', 'next of another flow', 'IP id', 'next longer', '65535 bytes', 'sequence gap']) {
      assert.ok((why.get(reason) ?? 0) > 0, `no group ended because of "${reason}": the generator misses a rule`);
    }
  });

  test('hand-made runs: 64-segment and 65535-byte limits, short segments, PSH, bad checksums, wrap-around', () => {
    const ip = (): IpFields => ({ src: 0x0af40102, dst: 0x0af40202, tos: 0, ttl: 62, id: 1000, frag: 0x4000 });
    const ts = new Uint8Array([1, 1, 8, 10, 0, 0, 0, 1, 0, 0, 0, 2]);
    /** Consecutive segments of one flow with the given payload sizes and flags. */
    const run = (sizes: number[], seq0 = 1_000_000, flags: number[] = []): Uint8Array[] => {
      let seq = seq0;
      return sizes.map((size, k) => {
        const p = buildTcp({ ...ip(), id: 1000 + k }, { sport: 40000, dport: 5201, seq, ack: 77, flags: flags[k] ?? TCP_ACK, window: 500, options: ts }, new Uint8Array(size).fill(k));
        seq = (seq + size) % 0x1_0000_0000;
        return p;
      });
    };
    const groups = (pkts: Uint8Array[], flags = GRO_TCP): number[] => {
      const c: GroCase = { pkts, flags };
      const w = nativeCoalesce(new Rng(1), c);
      checkCoalesce(c, w, 'hand-made');
      return w.map((b) => (b[1] === 0 ? 1 : (refSplit(decodeVnet(b), b.subarray(VNET_LEN)) as Uint8Array[]).length));
    };
    assert.deepEqual(groups(run(new Array<number>(130).fill(100))), [64, 64, 2]);
    // 20 + 32 + 44 * 1448 = 63764; one more would pass 65535
    assert.deepEqual(groups(run(new Array<number>(50).fill(1448))), [45, 5]);
    assert.deepEqual(groups(run(new Array<number>(50).fill(1460))), [44, 6]);
    assert.deepEqual(groups(run([1000, 1000, 500, 1000, 1000])), [3, 2]);
    assert.deepEqual(groups(run([1000, 1200, 1000])), [1, 2], 'a longer segment cannot follow');
    assert.deepEqual(groups(run([1000, 1000, 1000, 1000], 1, [TCP_ACK, TCP_ACK | TCP_PSH, TCP_ACK, TCP_ACK])), [2, 2]);
    assert.deepEqual(groups(run([1000, 1000, 1000], 1, [TCP_ACK | TCP_PSH, TCP_ACK, TCP_ACK])), [1, 2]);
    assert.deepEqual(groups(run([1000, 1000, 1000], 0xffffffff - 1500)), [3], 'sequence numbers wrap');
    const bad = run([1000, 1000, 1000, 1000, 1000]);
    (bad[2] as Uint8Array)[100] ^= 1;
    assert.deepEqual(groups(bad), [2, 1, 2]);
    const gap = run([1000, 1000, 1000, 1000]);
    gap.splice(2, 1);
    assert.deepEqual(groups(gap), [2, 1]);
    const a = run([1000, 1000, 1000]);
    const b = run([1000, 1000, 1000]).map((p) => { put16(p, 20, 40001); setL4Checksum(p); return p; });
    assert.deepEqual(groups([a[0], b[0], a[1], b[1], a[2], b[2]] as Uint8Array[]), [1, 1, 1, 1, 1, 1]);
    assert.deepEqual(groups(run([1000, 1000, 1000]), 0), [1, 1, 1], 'flags 0: nothing merges');
    assert.deepEqual(groups(run([1000, 1000, 1000]), GRO_UDP), [1, 1, 1], 'TCP needs GRO_TCP');
    const udp = (sizes: number[], csum: CsumMode = 'full'): Uint8Array[] =>
      sizes.map((s, k) => buildUdp({ ...ip(), id: k }, 4433, 50000, new Uint8Array(s).fill(k + 1), csum));
    assert.deepEqual(groups(udp([1200, 1200, 1200, 700, 1200]), GRO_UDP), [4, 1]);
    assert.deepEqual(groups(udp([1200, 1200, 1200]), GRO_TCP), [1, 1, 1], 'UDP needs GRO_UDP');
    assert.deepEqual(groups(udp([1200, 1200, 1200], 0), GRO_UDP | GRO_TCP), [3], 'UDP without checksums merges');
    assert.deepEqual(groups(udp(new Array<number>(70).fill(10)), GRO_UDP), [64, 6]);
  });

  test('GRO_TRUST_L4_CSUM: a segment with a bad TCP checksum merges (the outer checksum vouched for it); without, it does not', () => {
    const ip: IpFields = { src: 0x0af40102, dst: 0x0af40202, tos: 0, ttl: 62, id: 1, frag: 0x4000 };
    const seg = (k: number): Uint8Array =>
      buildTcp({ ...ip, id: 1 + k }, { sport: 1, dport: 2, seq: 1000 * k, ack: 9, flags: TCP_ACK, window: 100 }, new Uint8Array(1000).fill(k + 1));
    const pkts = [0, 1, 2, 3].map(seg);
    (pkts[2] as Uint8Array)[100] ^= 1; // a payload byte changed after the checksum was written
    const writes = (flags: number): number => nativeCoalesce(new Rng(1), { pkts, flags }).length;
    assert.equal(writes(GRO_TCP), 3, 'verified: the bad segment stands alone and splits the run');
    assert.equal(writes(GRO_TCP | native.GRO_TRUST_L4_CSUM), 1, 'trusted: one write');
    // the IP header checksum is still checked either way
    const badHeader = [0, 1, 2].map(seg);
    (badHeader[1] as Uint8Array)[10] ^= 1;
    assert.equal(nativeCoalesce(new Rng(1), { pkts: badHeader, flags: GRO_TCP | native.GRO_TRUST_L4_CSUM }).length, 3);
  });

  test('a TCP segment with the NS/AE flag bit (or reserved bits) set is not merged', () => {
    const ip: IpFields = { src: 0x0af40102, dst: 0x0af40202, tos: 0, ttl: 62, id: 1, frag: 0x4000 };
    const seg = (seq: number, flags: number): Uint8Array =>
      buildTcp(ip, { sport: 1, dport: 2, seq, ack: 9, flags, window: 100 }, new Uint8Array(1000).fill(seq % 251));
    const pkts = [seg(0, TCP_ACK), seg(1000, TCP_ACK | TCP_NS), seg(2000, TCP_ACK)];
    const c: GroCase = { pkts, flags: GRO_TCP };
    checkCoalesce(c, nativeCoalesce(new Rng(1), c), 'NS bit');
  });

  describe('rules Linux GRO has too: IP ids (+1 per segment without DF), IP header checksum, URG; and the urgent pointer', () => {
    const DF = 0x4000;
    /** Consecutive 1000-byte TCP segments of one flow with these IP ids, flag words and urgent pointers. */
    const tcpRun = (frag: number, ids: number[], flags: number[] = [], urgent: number[] = []): Uint8Array[] =>
      ids.map((id, k) => buildTcp({ src: 0x0af40102, dst: 0x0af40202, tos: 0, ttl: 62, id, frag },
        { sport: 40000, dport: 5201, seq: 7000 + 1000 * k, ack: 77, flags: flags[k] ?? TCP_ACK, window: 500, urgent: urgent[k] ?? 0 },
        new Uint8Array(1000).fill(k + 1)));
    const udpRun = (frag: number, ids: number[]): Uint8Array[] =>
      ids.map((id, k) => buildUdp({ src: 0x0af40102, dst: 0x0af40202, tos: 0, ttl: 62, id, frag }, 4433, 50000, new Uint8Array(1200).fill(k + 1)));
    /** Group sizes of the native writes, each write checked against the reference and resegmented. */
    const groups = (pkts: Uint8Array[], flags: number, what: string): number[] => {
      const w = nativeCoalesce(new Rng(1), { pkts, flags });
      checkCoalesce({ pkts, flags }, w, what);
      return w.map((b) => (b[1] === 0 ? 1 : (refSplit(decodeVnet(b), b.subarray(VNET_LEN)) as Uint8Array[]).length));
    };

    test('without DF, TCP segments merge only while each id is the previous one + 1 (wrapping at 65535)', () => {
      assert.deepEqual(groups(tcpRun(0, [1000, 1001, 1002, 1004, 1005]), GRO_TCP, 'gap in ids'), [3, 2]);
      assert.deepEqual(groups(tcpRun(0, [65534, 65535, 0, 1]), GRO_TCP, 'ids wrap'), [4]);
      assert.deepEqual(groups(tcpRun(0, [9, 9, 9]), GRO_TCP, 'fixed ids'), [1, 1, 1]);
      assert.deepEqual(groups(tcpRun(0, [5, 4, 3]), GRO_TCP, 'decreasing ids'), [1, 1, 1]);
      assert.deepEqual(groups(tcpRun(0, [100, 101, 7, 8]), GRO_TCP, 'a new run of ids'), [2, 2]);
    });

    test('with DF (atomic datagrams) any ids merge', () => {
      assert.deepEqual(groups(tcpRun(DF, [9, 9, 9]), GRO_TCP, 'DF fixed ids'), [3]);
      assert.deepEqual(groups(tcpRun(DF, [5000, 12, 40000, 3]), GRO_TCP, 'DF scattered ids'), [4]);
    });

    test('without DF, UDP datagrams merge only with ids + 1; with DF any ids merge', () => {
      assert.deepEqual(groups(udpRun(0, [0, 1, 3, 4]), GRO_UDP, 'UDP gap in ids'), [2, 2]);
      assert.deepEqual(groups(udpRun(0, [8, 8]), GRO_UDP, 'UDP same ids'), [1, 1]);
      assert.deepEqual(groups(udpRun(DF, [8, 8, 1]), GRO_UDP, 'UDP DF'), [3]);
    });

    test('a segment with URG is never merged, before or after others', () => {
      assert.deepEqual(groups(tcpRun(DF, [1, 2, 3], [TCP_ACK, TCP_ACK | TCP_URG, TCP_ACK], [0, 500, 0]), GRO_TCP, 'URG in the middle'), [1, 1, 1]);
      assert.deepEqual(groups(tcpRun(DF, [1, 2, 3], [TCP_ACK | TCP_URG, TCP_ACK | TCP_URG, TCP_ACK | TCP_URG], [800, 800, 800]), GRO_TCP, 'all URG'), [1, 1, 1]);
      assert.deepEqual(groups(tcpRun(DF, [1, 2, 3], [TCP_ACK, TCP_ACK, TCP_ACK | TCP_URG], [0, 0, 10]), GRO_TCP, 'URG last'), [2, 1]);
    });

    test('a packet whose IP header checksum is wrong is never merged (Linux GRO drops it to the slow path too)', () => {
      // found by native/fuzz/fuzz_gro.c: merging rewrote the header with a fresh checksum, so a
      // corrupted packet the kernel would have dropped was delivered
      for (const at of [0, 1, 3]) {
        const pkts = tcpRun(DF, [1, 2, 3, 4]);
        (pkts[at] as Uint8Array)[11] ^= 0x20;
        const want = at === 0 ? [1, 3] : at === 1 ? [1, 1, 2] : [3, 1];
        assert.deepEqual(groups(pkts, GRO_TCP, `bad IP checksum at ${at}`), want);
      }
      const udp = udpRun(0, [10, 11, 12]);
      (udp[1] as Uint8Array)[10] ^= 1;
      assert.deepEqual(groups(udp, GRO_UDP, 'UDP, bad IP checksum'), [1, 1, 1]);
    });

    test('a packet with the reserved IP flag set is not merged (resegmenting would give the others its flags)', () => {
      // found by a property test (test/unit/property-offload.test.ts): the reserved bit went unchecked
      for (const at of [0, 2]) {
        const pkts = tcpRun(DF, [1, 2, 3, 4]);
        (pkts[at] as Uint8Array)[6] |= 0x80;
        setIpChecksum(pkts[at] as Uint8Array);
        assert.deepEqual(groups(pkts, GRO_TCP, `reserved flag at ${at}`), at === 0 ? [1, 3] : [2, 1, 1]);
      }
      const udp = udpRun(0, [10, 11, 12]);
      (udp[1] as Uint8Array)[6] |= 0x80;
      setIpChecksum(udp[1] as Uint8Array);
      assert.deepEqual(groups(udp, GRO_UDP, 'UDP, reserved flag'), [1, 1, 1]);
    });

    test('segments whose urgent pointers differ (URG clear) are not merged: resegmenting would rewrite them', () => {
      assert.deepEqual(groups(tcpRun(DF, [1, 2, 3, 4], [], [0, 0, 5, 5]), GRO_TCP, 'urgent pointer'), [2, 2]);
    });
  });
});

// ---------------------------------------------------------------------------
// superVnetHeader: a TCP super-packet that came whole in one datagram
// ---------------------------------------------------------------------------

describe('superVnetHeader (a fast-path peer\'s super-packet, written as one GSO write)', () => {
  const MTU = 1472;
  const ip: IpFields = { src: 0x0af40102, dst: 0x0af40202, tos: 0, ttl: 62, id: 1, frag: 0x4000 };
  const tcp: TcpFields = { sport: 40000, dport: 5201, seq: 1000, ack: 7, flags: TCP_ACK | TCP_PSH, window: 512, options: new Uint8Array(12) };
  const payload = (n: number): Uint8Array => Uint8Array.from({ length: n }, (_, i) => (i * 7 + 3) % 256);
  const l4 = (p: Uint8Array): number => u16(p, ipHeaderLength(p) + 16);

  test('a partial checksum (the pseudo-header sum) is kept, and the header asks the kernel to finish it per segment of the MTU', () => {
    const p = buildTcp(ip, tcp, payload(20_000), 'pseudo');
    const before = l4(p);
    const hdr = native.superVnetHeader(p, MTU);
    assert.ok(hdr !== null);
    assert.deepEqual(decodeVnet(hdr), { flags: NEEDS_CSUM, gsoType: GSO_TCPV4, hdrLen: 52, gsoSize: MTU - 52, csumStart: 20, csumOffset: 16 });
    assert.equal(l4(p), before);
  });

  test('a complete, right checksum is turned into the partial form; CWR asks for ECN', () => {
    const p = buildTcp(ip, { ...tcp, flags: TCP_ACK | TCP_CWR }, payload(9_001), 'full');
    assert.ok(l4ChecksumValid(p));
    const hdr = native.superVnetHeader(p, MTU);
    assert.ok(hdr !== null);
    assert.equal(decodeVnet(hdr).gsoType, GSO_TCPV4 | GSO_ECN);
    assert.equal(l4(p), ones(pseudoSum(p, IPPROTO_TCP, p.length - 20)), 'the field now holds the pseudo-header sum');
  });

  test('refuses a wrong checksum, another protocol, a fragment, a length that is not the datagram\'s, and headers that fill the MTU', () => {
    const wrong = buildTcp(ip, tcp, payload(5_000), 'full');
    put16(wrong, 36, u16(wrong, 36) ^ 0x0101);
    assert.equal(native.superVnetHeader(wrong, MTU), null, 'wrong checksum');
    assert.equal(native.superVnetHeader(buildUdp(ip, 1, 2, payload(5_000)), MTU), null, 'UDP');
    const frag = buildTcp({ ...ip, frag: 0x2000 }, tcp, payload(5_000), 'pseudo');
    assert.equal(native.superVnetHeader(frag, MTU), null, 'a fragment');
    const p = buildTcp(ip, tcp, payload(5_000), 'pseudo');
    assert.equal(native.superVnetHeader(p.subarray(0, p.length - 1), MTU), null, 'total length beyond the datagram');
    assert.equal(native.superVnetHeader(p, 52), null, 'no room for payload in a segment');
  });
});
