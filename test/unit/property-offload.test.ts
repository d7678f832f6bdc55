/**
 * Property-based tests of the addon's segmentation offload (native/src/gso.c
 * and gro.c, reached through the test entry points gsoSplit and groCoalesce)
 * against reference code written here from the protocol rules:
 *
 * - segmentation as a sender's TCP or UDP does it: a byte stream cut into
 *   segments of at most MSS bytes, sequence numbers advancing by the bytes
 *   sent, IP ids counting up, full IPv4 / TCP / UDP checksums (RFC 791,
 *   793, 768, 1071);
 * - GSO as Linux does it for a super-packet with a virtio-net header
 *   (VIRTIO_NET_HDR_F_NEEDS_CSUM, gso_type TCPV4 or UDP_L4): the same cut of
 *   the payload, FIN and PSH only on the last segment, CWR only on the first,
 *   IP id + k, a UDP checksum of 0 sent as 0xffff.
 *
 * Properties: a super-packet built from a model splits into exactly the
 * model's segments; a damaged one splits as the reference does or not at all;
 * random flows cut into segments, interleaved, damaged here and there, then
 * coalesced and split again give back the input packets byte for byte (except
 * what a resegmentation legitimately renumbers), with valid checksums, and a
 * coalesced write never holds packets of two flows.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';

import { u16, u32, put16, put32, wordSum, ones, TCP_FIN, TCP_SYN, TCP_RST, TCP_PSH, TCP_ACK, TCP_URG, TCP_ECE, TCP_CWR, VNET_LEN, NEEDS_CSUM, GSO_NONE, GSO_TCPV4, GSO_UDP_L4, GSO_ECN, encodeVnet, decodeVnet, type Vnet } from '../packet-bytes';
import { loadNative } from '../../src/native';
import { seededRandom } from '../prng';
import { checkProperty, uint32Arb } from '../property';

const native = loadNative();

// ---------------------------------------------------------------------------
// Byte and checksum arithmetic (plain integers, big-endian words)

const TWO_32 = 0x1_0000_0000;
const hex = (n: number): string => `0x${n.toString(16)}`;

const IPPROTO_TCP = 6;
const IPPROTO_UDP = 17;

/** Segments one super-packet may split into (native GSO_MAX_SEGS). */
const GSO_MAX_SEGS = native.GSO_MAX_SEGS;
/** Segments one coalesced write may hold (offload.h WEFT_GRO_MAX_SEGS). */
const GRO_MAX_SEGS = 64;
const IP_MAX = 65535;

const ihlOf = (p: Uint8Array): number => (p[0]! % 16) * 4;

function ipHeaderOk(p: Uint8Array): boolean {
  const ihl = ihlOf(p);
  return p.length >= 20 && ihl >= 20 && ihl <= p.length && ones(wordSum(p, 0, ihl)) === 0xffff;
}

function setIpChecksum(p: Uint8Array): void {
  const ihl = ihlOf(p);
  if (p.length < 20 || ihl < 20 || ihl > p.length) return;
  put16(p, 10, 0);
  put16(p, 10, 0xffff - ones(wordSum(p, 0, ihl)));
}

const pseudoSum = (p: Uint8Array, proto: number, l4len: number): number => wordSum(p, 12, 20) + proto + l4len;
const l4CsumOffset = (proto: number): number => (proto === IPPROTO_TCP ? 16 : 6);

/** Whether a TCP or UDP packet's L4 checksum verifies (a UDP checksum of 0 means "none": valid). */
function l4ChecksumOk(p: Uint8Array): boolean {
  const ihl = ihlOf(p);
  const proto = p[9]!;
  if (proto === IPPROTO_UDP && u16(p, ihl + 6) === 0) return true;
  return ones(pseudoSum(p, proto, p.length - ihl) + wordSum(p, ihl, p.length)) === 0xffff;
}

/** Stores the full L4 checksum (TCP or UDP; UDP's 0 as 0xffff) when the headers fit the packet. */
function setL4Checksum(p: Uint8Array): void {
  const ihl = ihlOf(p);
  const proto = p[9]!;
  if ((proto !== IPPROTO_TCP && proto !== IPPROTO_UDP) || ihl < 20 || ihl + l4CsumOffset(proto) + 2 > p.length) return;
  const field = ihl + l4CsumOffset(proto);
  put16(p, field, 0);
  const c = 0xffff - ones(pseudoSum(p, proto, p.length - ihl) + wordSum(p, ihl, p.length));
  put16(p, field, proto === IPPROTO_UDP && c === 0 ? 0xffff : c);
}

function equalBytes(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && Buffer.from(a.buffer, a.byteOffset, a.length).equals(Buffer.from(b.buffer, b.byteOffset, b.length));
}

function firstDifference(got: Uint8Array, want: Uint8Array): string {
  if (got.length !== want.length) return `length ${got.length}, expected ${want.length}`;
  for (let i = 0; i < got.length; i++) {
    if (got[i] !== want[i]) return `byte ${i} is ${hex(got[i]!)}, expected ${hex(want[i]!)}`;
  }
  return 'equal';
}

const showPacket = (p: Uint8Array): string => Buffer.from(p.subarray(0, 80)).toString('hex') + (p.length > 80 ? `... (${p.length} bytes)` : '');

// ---------------------------------------------------------------------------
// Flows and the reference sender's segmentation

interface Flow {
  readonly tcp: boolean;
  readonly src: number;
  readonly dst: number;
  readonly sport: number;
  readonly dport: number;
  readonly tos: number;
  readonly ttl: number;
  readonly df: boolean;
  readonly ipOptions: Uint8Array;
  readonly seq0: number;
  readonly ack: number;
  readonly window: number;
  readonly tcpOptions: Uint8Array;
  readonly id0: number;
  readonly mss: number;
  /** Payload bytes of the stream: length and a seed for their contents. */
  readonly streamLength: number;
  readonly streamSeed: number;
  readonly push: boolean;
  readonly noUdpChecksum: boolean;
}

function streamBytes(f: Flow): Uint8Array {
  const next = seededRandom(f.streamSeed);
  const out = new Uint8Array(f.streamLength);
  for (let i = 0; i < out.length; i += 4) {
    const v = next();
    for (let k = 0; k < 4 && i + k < out.length; k++) out[i + k] = Math.floor(v / 256 ** k) % 256;
  }
  return out;
}

interface SegmentFields {
  readonly id: number;
  readonly seq: number;
  readonly tcpFlags: number;
  /** How the L4 checksum field is left: full, 0 (UDP "none"), or the pseudo-header sum (NEEDS_CSUM). */
  readonly csum: 'full' | 'none' | 'pseudo';
}

/** One IPv4 packet of the flow carrying `payload`, built field by field. */
function buildPacket(f: Flow, payload: Uint8Array, s: SegmentFields): Uint8Array {
  const ihl = 20 + f.ipOptions.length;
  const l4hdr = f.tcp ? 20 + f.tcpOptions.length : 8;
  const p = new Uint8Array(ihl + l4hdr + payload.length);
  p[0] = 0x40 + ihl / 4;
  p[1] = f.tos;
  put16(p, 2, p.length % 65536);
  put16(p, 4, s.id % 65536);
  put16(p, 6, f.df ? 0x4000 : 0);
  p[8] = f.ttl;
  p[9] = f.tcp ? IPPROTO_TCP : IPPROTO_UDP;
  put32(p, 12, f.src);
  put32(p, 16, f.dst);
  p.set(f.ipOptions, 20);
  put16(p, ihl, f.sport);
  put16(p, ihl + 2, f.dport);
  if (f.tcp) {
    put32(p, ihl + 4, s.seq % TWO_32);
    put32(p, ihl + 8, f.ack);
    p[ihl + 12] = (l4hdr / 4) * 16;
    p[ihl + 13] = s.tcpFlags;
    put16(p, ihl + 14, f.window);
    p.set(f.tcpOptions, ihl + 20);
  } else {
    put16(p, ihl + 4, (8 + payload.length) % 65536);
  }
  p.set(payload, ihl + l4hdr);
  if (s.csum === 'full') setL4Checksum(p);
  else if (s.csum === 'pseudo') put16(p, ihl + l4CsumOffset(p[9]!), ones(pseudoSum(p, p[9]!, p.length - ihl)));
  setIpChecksum(p);
  return p;
}

/**
 * The segments a sender puts on the wire for the flow's stream: MSS-sized
 * pieces (the last may be shorter), ids id0 + k, sequence numbers seq0 + bytes
 * before, flags from `flagsOf(k, n)`, full checksums (or none for UDP when the
 * flow sends none).
 */
function segmentFlow(f: Flow, flagsOf: (k: number, n: number) => number): Uint8Array[] {
  const stream = streamBytes(f);
  const n = stream.length === 0 ? 1 : Math.ceil(stream.length / f.mss);
  const out: Uint8Array[] = [];
  for (let k = 0; k < n; k++) {
    out.push(buildPacket(f, stream.subarray(k * f.mss, (k + 1) * f.mss), {
      id: (f.id0 + k) % 65536,
      seq: (f.seq0 + k * f.mss) % TWO_32,
      tcpFlags: flagsOf(k, n),
      csum: !f.tcp && f.noUdpChecksum ? 'none' : 'full',
    }));
  }
  return out;
}

/** Flags of a TSO super-packet's segment k of n (Linux tcp_gso_segment): FIN and PSH on the last only, CWR on the first only. */
function gsoSegmentFlags(flags: number, k: number, n: number): number {
  let f = flags;
  if (k !== n - 1) f &= ~(TCP_FIN | TCP_PSH);
  if (k !== 0) f &= ~TCP_CWR;
  return f;
}

// ---------------------------------------------------------------------------
// Reference GSO: a super-packet with a virtio-net header split as Linux does


/**
 * Splits like Linux's GSO for TCPV4 (ECN or not) and UDP_L4, or null for
 * what cannot be split: not IPv4, a bad IHL, a fragment (MF or an offset), a
 * protocol that does not match the gso type, a TCP header that does not fit,
 * gso_size 0, more than GSO_MAX_SEGS segments. hdr_len is not trusted: the
 * headers are measured.
 */
function refSplit(v: Vnet, pkt: Uint8Array): Uint8Array[] | null {
  if (pkt.length < 20 || Math.floor(pkt[0]! / 16) !== 4) return null;
  const ihl = ihlOf(pkt);
  if (ihl < 20 || ihl > pkt.length) return null;
  if (u16(pkt, 6) % 0x4000 !== 0) return null; // MF or a fragment offset
  const kind = v.gsoType % GSO_ECN;
  const tcp = kind === GSO_TCPV4;
  if (!tcp && kind !== GSO_UDP_L4) return null;
  if (pkt[9] !== (tcp ? IPPROTO_TCP : IPPROTO_UDP)) return null;
  if (tcp && ihl + 20 > pkt.length) return null;
  const l4hdr = tcp ? Math.floor(pkt[ihl + 12]! / 16) * 4 : 8;
  if (l4hdr < 20 && tcp) return null;
  const hdrLen = ihl + l4hdr;
  if (hdrLen > pkt.length || v.gsoSize === 0) return null;
  const payload = pkt.length - hdrLen;
  const n = payload === 0 ? 1 : Math.ceil(payload / v.gsoSize);
  if (n > GSO_MAX_SEGS) return null;
  const segs: Uint8Array[] = [];
  for (let k = 0; k < n; k++) {
    const plen = Math.min(v.gsoSize, payload - k * v.gsoSize);
    const s = new Uint8Array(hdrLen + plen);
    s.set(pkt.subarray(0, hdrLen));
    s.set(pkt.subarray(hdrLen + k * v.gsoSize, hdrLen + k * v.gsoSize + plen), hdrLen);
    put16(s, 2, s.length);
    put16(s, 4, (u16(pkt, 4) + k) % 65536);
    if (tcp) {
      put32(s, ihl + 4, (u32(pkt, ihl + 4) + k * v.gsoSize) % TWO_32);
      s[ihl + 13] = gsoSegmentFlags(pkt[ihl + 13]!, k, n);
    } else {
      put16(s, ihl + 4, 8 + plen);
    }
    setL4Checksum(s);
    setIpChecksum(s);
    segs.push(s);
  }
  return segs;
}

/** Calls the addon with the vnet header and packet at a random offset inside a larger buffer. */
function nativeSplit(vnetAndPacket: Uint8Array, lead: number): Buffer[] | null {
  const buf = new Uint8Array(lead + vnetAndPacket.length);
  buf.fill(0xee, 0, lead);
  buf.set(vnetAndPacket, lead);
  return native.gsoSplit(buf.subarray(lead));
}

function concat(parts: readonly Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

// ---------------------------------------------------------------------------
// Arbitraries

const tcpOptionsArb: fc.Arbitrary<Uint8Array> = fc.oneof(
  fc.constant(new Uint8Array(0)),
  uint32Arb.map((tsval) => {
    const o = new Uint8Array(12);
    o.set([1, 1, 8, 10]); // NOP NOP timestamps
    put32(o, 4, tsval);
    put32(o, 8, 0x01020304);
    return o;
  }),
  fc.integer({ min: 1, max: 10 }).chain((w) => fc.uint8Array({ minLength: 4 * w, maxLength: 4 * w })),
);

/** Sequence numbers, often just below the 2^32 wrap. */
const seqArb = fc.oneof(uint32Arb, fc.integer({ min: 1, max: 200_000 }).map((d) => TWO_32 - d));
/** IP ids, often just below the 2^16 wrap. */
const idArb = fc.oneof(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0xff00, max: 0xffff }));

interface FlowOptions {
  readonly maxSegments: number;
  readonly ipOptions: boolean;
}

function flowArb(opts: FlowOptions): fc.Arbitrary<Flow> {
  return fc
    .record({
      tcp: fc.boolean(),
      src: uint32Arb,
      dst: uint32Arb,
      sport: fc.integer({ min: 0, max: 0xffff }),
      dport: fc.integer({ min: 0, max: 0xffff }),
      tos: fc.oneof(fc.constant(0), fc.integer({ min: 0, max: 255 })),
      ttl: fc.integer({ min: 1, max: 255 }),
      df: fc.boolean(),
      ipOptions: opts.ipOptions
        ? fc.oneof(fc.constant(new Uint8Array(0)), fc.integer({ min: 1, max: 10 }).chain((w) => fc.uint8Array({ minLength: 4 * w, maxLength: 4 * w })))
        : fc.constant(new Uint8Array(0)),
      seq0: seqArb,
      ack: uint32Arb,
      window: fc.integer({ min: 0, max: 0xffff }),
      tcpOptions: tcpOptionsArb,
      id0: idArb,
      mss: fc.oneof(fc.constantFrom(1448, 1460, 1400, 536, 1472), fc.integer({ min: 1, max: 1460 })),
      segments: fc.integer({ min: 1, max: opts.maxSegments }),
      lastPart: fc.nat(),
      streamSeed: fc.integer({ min: 0, max: 0xffffffff }),
      push: fc.boolean(),
      noUdpChecksum: fc.boolean(),
    })
    .map(({ segments, lastPart, ...f }) => ({
      ...f,
      streamLength: (segments - 1) * f.mss + 1 + (lastPart % f.mss),
    }));
}

// ---------------------------------------------------------------------------
// GSO properties

interface SuperCase {
  readonly flow: Flow;
  readonly tcpFlags: number;
  readonly ecn: boolean;
  /** hdr_len as the kernel may give it: right, or anything (it is not trusted). */
  readonly hdrLen: number | undefined;
  readonly lead: number;
}

const superFlagsArb = fc.constantFrom(
  TCP_ACK, TCP_ACK | TCP_PSH, TCP_ACK | TCP_FIN, TCP_ACK | TCP_PSH | TCP_FIN, TCP_ACK | TCP_CWR, TCP_ACK | TCP_CWR | TCP_PSH,
  TCP_ACK | TCP_ECE, TCP_ACK | TCP_ECE | TCP_CWR | TCP_PSH | TCP_FIN, TCP_ACK | TCP_URG,
);

/** Super-packets of at most 65535 bytes; segment counts around GSO_MAX_SEGS too. */
const superCaseArb: fc.Arbitrary<SuperCase> = fc
  .record({
    flow: fc.oneof(flowArb({ maxSegments: 40, ipOptions: true }), flowArb({ maxSegments: 200, ipOptions: true })),
    zeroPayload: fc.integer({ min: 0, max: 9 }).map((n) => n === 0),
    tcpFlags: superFlagsArb,
    ecn: fc.boolean(),
    hdrLen: fc.option(fc.integer({ min: 0, max: 0xffff })),
    lead: fc.nat(7),
  })
  .map(({ flow, zeroPayload, ...rest }) => {
    const headers = 20 + flow.ipOptions.length + (flow.tcp ? 20 + flow.tcpOptions.length : 8);
    const streamLength = zeroPayload ? 0 : Math.min(flow.streamLength, IP_MAX - headers);
    // GSO always computes the UDP checksum: the model's segments carry one
    return { ...rest, hdrLen: rest.hdrLen ?? undefined, flow: { ...flow, streamLength, noUdpChecksum: false } };
  });

function superPacketOf(c: SuperCase): { vnet: Vnet; pkt: Uint8Array } {
  const f = c.flow;
  const pkt = buildPacket(f, streamBytes(f), { id: f.id0, seq: f.seq0, tcpFlags: c.tcpFlags, csum: 'pseudo' });
  const ihl = 20 + f.ipOptions.length;
  const vnet: Vnet = {
    flags: NEEDS_CSUM,
    gsoType: f.tcp ? GSO_TCPV4 | (c.ecn ? GSO_ECN : 0) : GSO_UDP_L4,
    hdrLen: c.hdrLen ?? ihl + (f.tcp ? 20 + f.tcpOptions.length : 8),
    gsoSize: f.mss,
    csumStart: ihl,
    csumOffset: f.tcp ? 16 : 6,
  };
  return { vnet, pkt };
}

/** Changes to a super-packet's bytes (vnet header included). */
interface ByteEdit {
  readonly at: number;
  readonly value: number;
  /** Edits in the first 80 bytes (headers) are likelier to matter. */
  readonly inHeaders: boolean;
}

const byteEditArb: fc.Arbitrary<ByteEdit> = fc.record({ at: fc.nat(), value: fc.integer({ min: 0, max: 255 }), inHeaders: fc.boolean() });

function compareSplit(got: readonly Uint8Array[] | null, want: readonly Uint8Array[] | null, what: string): void {
  if (want === null) {
    assert.equal(got, null, `${what}: the addon split a packet that cannot be split, into ${got?.length} segments`);
    return;
  }
  assert.ok(got !== null, `${what}: the addon refused a packet the reference splits into ${want.length} segments`);
  assert.equal(got.length, want.length, `${what}: ${got.length} segments, expected ${want.length}`);
  got.forEach((g, k) => {
    assert.ok(equalBytes(g, want[k]!), `${what}: segment ${k}/${want.length}: ${firstDifference(g, want[k]!)}\n  got  ${showPacket(g)}\n  want ${showPacket(want[k]!)}`);
  });
}

describe('property: GSO split', () => {
  it('a super-packet built from a flow splits into exactly the segments a sender of that flow would send', () => {
    checkProperty(
      fc.property(superCaseArb, (c) => {
        const { vnet, pkt } = superPacketOf(c);
        const f = c.flow;
        const n = f.streamLength === 0 ? 1 : Math.ceil(f.streamLength / f.mss);
        const want = n > GSO_MAX_SEGS ? null : segmentFlow(f, (k, total) => gsoSegmentFlags(c.tcpFlags, k, total));
        // the model (a sender's segments) and the reference GSO agree: the reference is right for this input
        compareSplit(refSplit(vnet, pkt), want, 'reference GSO vs the model');
        const got = nativeSplit(concat([encodeVnet(vnet), pkt]), c.lead);
        const what = `${f.tcp ? 'TCP' : 'UDP'} super-packet of ${pkt.length} bytes, gso_size ${f.mss}, ${n} segments`;
        compareSplit(got, want, what);
        if (got !== null) {
          for (const s of got) {
            assert.ok(ipHeaderOk(s), `${what}: a segment's IP header checksum is wrong`);
            assert.ok(l4ChecksumOk(s), `${what}: a segment's L4 checksum is wrong`);
            if (s[9] === IPPROTO_UDP) assert.notEqual(u16(s, ihlOf(s) + 6), 0, `${what}: a UDP checksum of 0 ("none") where one was computed`);
          }
          const headers = pkt.length - f.streamLength;
          assert.ok(equalBytes(concat(got.map((s) => s.subarray(headers))), streamBytes(f)), `${what}: payloads do not add up to the stream`);
        }
      }),
      250,
    );
  });

  it('a damaged super-packet (any byte of the vnet header or packet changed, or cut short) splits as the reference does, or not at all', () => {
    checkProperty(
      fc.property(superCaseArb, fc.array(byteEditArb, { minLength: 1, maxLength: 4 }), fc.option(fc.nat()), (c, edits, cut) => {
        const { vnet, pkt } = superPacketOf(c);
        let bytes = concat([encodeVnet(vnet), pkt]);
        for (const e of edits) {
          const span = e.inHeaders ? Math.min(bytes.length, VNET_LEN + 80) : bytes.length;
          bytes[e.at % span] = e.value;
        }
        if (cut !== null) bytes = bytes.slice(0, VNET_LEN + (cut % (bytes.length - VNET_LEN + 1)));
        const want = refSplit(decodeVnet(bytes), bytes.subarray(VNET_LEN));
        compareSplit(nativeSplit(bytes, c.lead), want, `damaged packet ${showPacket(bytes)}`);
      }),
      400,
    );
  });
});

// ---------------------------------------------------------------------------
// GRO: flows cut into segments, interleaved, damaged, coalesced, split again

/** A field in which a sibling flow differs from the flow it is derived from. */
const SIBLING_FIELDS = ['sport', 'dport', 'src', 'dst', 'tos', 'ttl', 'df', 'protocol', 'ack', 'window', 'tcpOptions'] as const;
type SiblingField = (typeof SIBLING_FIELDS)[number];

function sibling(f: Flow, field: SiblingField, salt: number): Flow {
  const bump16 = (v: number): number => (v + 1 + (salt % 0xfffe)) % 65536;
  switch (field) {
    case 'sport': return { ...f, sport: bump16(f.sport) };
    case 'dport': return { ...f, dport: bump16(f.dport) };
    case 'src': return { ...f, src: (f.src + 1 + salt) % TWO_32 };
    case 'dst': return { ...f, dst: (f.dst + 1 + salt) % TWO_32 };
    case 'tos': return { ...f, tos: (f.tos + 1 + (salt % 255)) % 256 };
    case 'ttl': return { ...f, ttl: 1 + ((f.ttl + (salt % 254)) % 255) };
    case 'df': return { ...f, df: !f.df };
    case 'protocol': return { ...f, tcp: !f.tcp };
    case 'ack': return { ...f, ack: (f.ack + 1 + salt) % TWO_32 };
    case 'window': return { ...f, window: bump16(f.window) };
    case 'tcpOptions': {
      const o = f.tcpOptions.length === 0 ? Uint8Array.from([1, 1, 1, 1]) : f.tcpOptions.slice();
      o[salt % o.length] = (o[salt % o.length]! + 1) % 256;
      return { ...f, tcpOptions: o };
    }
  }
}

/** Damage done to the interleaved batch, at packet `at` (modulo the batch size). */
type BatchEvent =
  | { readonly kind: 'drop'; readonly at: number }
  | { readonly kind: 'duplicate'; readonly at: number }
  | { readonly kind: 'swap'; readonly at: number }
  /** A byte changed anywhere, checksums left as they were (so usually wrong). */
  | { readonly kind: 'corrupt'; readonly at: number; readonly offset: number; readonly xor: number }
  /** A header byte set (IP or L4 header), then both checksums made right again. */
  | { readonly kind: 'header'; readonly at: number; readonly offset: number; readonly value: number }
  /** Other TCP flags, checksums right. */
  | { readonly kind: 'flags'; readonly at: number; readonly flags: number }
  /** A UDP datagram without a checksum (field 0). */
  | { readonly kind: 'no-checksum'; readonly at: number }
  /** One header field changed a little, checksums right: what a merge must notice (or may ignore). */
  | { readonly kind: 'field'; readonly at: number; readonly field: HeaderField; readonly value: number };

const HEADER_FIELDS = ['ip-reserved-flag', 'df', 'ecn', 'ip-id', 'tcp-reserved-bits', 'urgent', 'window', 'ack', 'option-byte', 'udp-length'] as const;
type HeaderField = (typeof HEADER_FIELDS)[number];

/** Changes one field of the packet (IPv4 without options assumed; others are left alone) and fixes the checksums. */
function changeField(p: Uint8Array, field: HeaderField, value: number): void {
  if (p.length < 28 || p[0] !== 0x45) return;
  const tcp = p[9] === IPPROTO_TCP && p.length >= 40;
  switch (field) {
    case 'ip-reserved-flag': p[6] = p[6]! ^ 0x80; break;
    case 'df': p[6] = p[6]! ^ 0x40; break;
    case 'ecn': p[1] = p[1]! ^ (1 + (value % 3)); break;
    case 'ip-id': put16(p, 4, value % 65536); break;
    case 'tcp-reserved-bits': if (tcp) p[32] = p[32]! ^ (1 + (value % 15)); break;
    case 'urgent': if (tcp) put16(p, 38, value % 65536); break;
    case 'window': if (tcp) put16(p, 34, (u16(p, 34) + 1 + (value % 100)) % 65536); break;
    case 'ack': if (tcp) put32(p, 28, (u32(p, 28) + 1 + value) % TWO_32); break;
    case 'option-byte': if (tcp && p[32]! >= 0x60) p[40 + (value % ((p[32]! >> 4) * 4 - 20))] ^= 1; break;
    case 'udp-length': if (!tcp) put16(p, 24, value % 65536); break;
  }
  if (!(p[9] === IPPROTO_UDP && u16(p, 26) === 0)) setL4Checksum(p);
  setIpChecksum(p);
}

const batchEventArb: fc.Arbitrary<BatchEvent> = fc.oneof(
  fc.record({ kind: fc.constant('drop' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('duplicate' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('swap' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('corrupt' as const), at: fc.nat(), offset: fc.nat(), xor: fc.integer({ min: 1, max: 255 }) }),
  fc.record({ kind: fc.constant('header' as const), at: fc.nat(), offset: fc.nat(59), value: fc.integer({ min: 0, max: 255 }) }),
  fc.record({
    kind: fc.constant('flags' as const),
    at: fc.nat(),
    flags: fc.constantFrom(TCP_ACK | TCP_PSH, TCP_ACK | TCP_FIN, TCP_ACK | TCP_SYN, TCP_RST, TCP_ACK | TCP_URG, TCP_ACK | TCP_ECE, TCP_ACK | TCP_CWR, 0),
  }),
  fc.record({ kind: fc.constant('no-checksum' as const), at: fc.nat() }),
  fc.record({ kind: fc.constant('field' as const), at: fc.nat(), field: fc.constantFrom(...HEADER_FIELDS), value: fc.nat() }),
);

function applyEvent(batch: Uint8Array[], e: BatchEvent): void {
  if (batch.length === 0) return;
  const i = e.at % batch.length;
  const p = batch[i]!;
  switch (e.kind) {
    case 'drop':
      batch.splice(i, 1);
      return;
    case 'duplicate':
      batch.splice(i, 0, p.slice());
      return;
    case 'swap':
      if (i + 1 < batch.length) [batch[i], batch[i + 1]] = [batch[i + 1]!, p];
      return;
    case 'corrupt':
      p[e.offset % p.length] = p[e.offset % p.length]! ^ e.xor;
      return;
    case 'header': {
      const headers = Math.min(p.length, ihlOf(p) + (p[9] === IPPROTO_TCP ? 60 : 8));
      const at = e.offset % headers;
      if (at === 10 || at === 11) return; // the checksum itself: recomputed below anyway
      const udpNone = p[9] === IPPROTO_UDP && u16(p, ihlOf(p) + 6) === 0;
      p[at] = e.value;
      if (!udpNone) setL4Checksum(p);
      setIpChecksum(p);
      return;
    }
    case 'flags':
      if (p[9] !== IPPROTO_TCP) return;
      p[ihlOf(p) + 13] = e.flags;
      setL4Checksum(p);
      return;
    case 'no-checksum':
      if (p[9] === IPPROTO_UDP) put16(p, ihlOf(p) + 6, 0);
      return;
    case 'field':
      changeField(p, e.field, e.value);
      return;
  }
}

interface GroCase {
  readonly flows: Flow[];
  /** The input packets, in the order the TUN write path gets them. */
  readonly batch: Uint8Array[];
  readonly groFlags: number;
}

/** 1-3 flows, each with 0-2 siblings that differ in one field; their segments interleaved in runs; then damage. */
const groCaseArb: fc.Arbitrary<GroCase> = fc
  .record({
    bases: fc.array(
      fc.tuple(
        flowArb({ maxSegments: 70, ipOptions: false }),
        fc.array(fc.tuple(fc.constantFrom(...SIBLING_FIELDS), fc.nat()), { maxLength: 2 }),
      ),
      { minLength: 1, maxLength: 3 },
    ),
    schedule: fc.array(fc.tuple(fc.nat(), fc.integer({ min: 1, max: 80 })), { minLength: 1, maxLength: 12 }),
    events: fc.array(batchEventArb, { maxLength: 8 }),
    groFlags: fc.constantFrom(native.GRO_TCP | native.GRO_UDP, native.GRO_TCP | native.GRO_UDP, native.GRO_TCP, native.GRO_UDP, 0),
  })
  .map(({ bases, schedule, events, groFlags }) => {
    const flows: Flow[] = [];
    for (const [base, siblings] of bases) {
      flows.push(base);
      for (const [field, salt] of siblings) flows.push(sibling(base, field, salt));
    }
    const queues = flows.map((f) => segmentFlow(f, (k, n) => (k === n - 1 && f.push ? TCP_ACK | TCP_PSH : TCP_ACK)));
    const batch: Uint8Array[] = [];
    for (const [pick, run] of schedule) {
      const q = queues[pick % queues.length]!;
      batch.push(...q.splice(0, run));
    }
    for (const q of queues) batch.push(...q); // whatever the schedule left, at the end
    const limited = batch.slice(0, 1000);
    for (const e of events) applyEvent(limited, e);
    return { flows, batch: limited, groFlags };
  });

/** What identifies a flow in a packet's headers (and what one coalesced header can only say once). */
function flowKey(p: Uint8Array): string {
  const ihl = ihlOf(p);
  const l4 = p.length >= ihl + 4 ? Buffer.from(p.subarray(ihl, ihl + 4)).toString('hex') : '';
  return `${Buffer.from(p.subarray(12, 20)).toString('hex')} ${p[9]} ${l4} tos ${p[1]} ttl ${p[8]} df ${(p[6]! & 0x40) !== 0}`;
}

/**
 * What splitting a coalesced write must give back for input packet `p`, the
 * k-th of its write whose first packet is `first`: the packet itself, except
 * the IP id renumbered from the first's (id + k, as every segmentation numbers
 * them; offload.h merges differing ids only with DF, where the id means
 * nothing, RFC 6864) and a UDP checksum of 0 filled in (NEEDS_CSUM makes the
 * segmentation compute it). Every other byte, the urgent pointer and the IP
 * flags included, must come back as it was.
 */
function expectedAfterResplit(p: Uint8Array, first: Uint8Array, k: number): Uint8Array {
  const q = p.slice();
  put16(q, 4, (u16(first, 4) + k) % 65536);
  if (q[9] === IPPROTO_UDP && u16(q, 20 + 6) === 0) setL4Checksum(q);
  setIpChecksum(q);
  return q;
}

function runCoalesce(batch: readonly Uint8Array[], flags: number, gap: number): Buffer[] {
  const offsets = new Int32Array(batch.length);
  const lens = new Int32Array(batch.length);
  let size = 0;
  batch.forEach((p, i) => {
    size += gap;
    offsets[i] = size;
    lens[i] = p.length;
    size += p.length;
  });
  const slab = new Uint8Array(size).fill(0xdd);
  batch.forEach((p, i) => slab.set(p, offsets[i]!));
  return native.groCoalesce(slab, offsets, lens, batch.length, flags);
}

describe('property: GRO coalescing, then GSO split', () => {
  it('flows cut into segments, interleaved and damaged, coalesce and split back into the same packets; no write mixes flows', () => {
    let mergedWrites = 0;
    let mergedPackets = 0;
    checkProperty(
      fc.property(groCaseArb, fc.nat(7), (c, gap) => {
        const inputs = c.batch.map((p) => p.slice()); // the addon rewrites headers in its slab, never in these
        const writes = runCoalesce(c.batch, c.groFlags, gap);
        let next = 0; // the input packet the next write must start with
        writes.forEach((w, wi) => {
          const vnet = decodeVnet(w);
          const pkt = w.subarray(VNET_LEN);
          const what = `write ${wi} (from input packet ${next})`;
          if (vnet.gsoType === GSO_NONE) {
            assert.ok(w.subarray(0, VNET_LEN).every((b) => b === 0), `${what}: a single packet with a non-zero vnet header`);
            const want = inputs[next];
            assert.ok(want !== undefined, `${what}: more packets written than given`);
            assert.ok(equalBytes(pkt, want), `${what}: a packet written alone changed: ${firstDifference(pkt, want)}`);
            next++;
            return;
          }
          // A coalesced write: checked as the kernel will read it.
          assert.equal(c.groFlags === 0, false, `${what}: coalesced with GRO off`);
          const tcp = pkt[9] === IPPROTO_TCP;
          assert.equal(pkt[0], 0x45, `${what}: a coalesced packet must be IPv4 without options`);
          const l4hdr = tcp ? Math.floor(pkt[32]! / 16) * 4 : 8;
          assert.deepEqual(
            { ...vnet, gsoSize: 0 },
            { flags: NEEDS_CSUM, gsoType: tcp ? GSO_TCPV4 : GSO_UDP_L4, hdrLen: 20 + l4hdr, gsoSize: 0, csumStart: 20, csumOffset: l4CsumOffset(pkt[9]!) },
            `${what}: vnet header`,
          );
          assert.equal(u16(pkt, 2), pkt.length, `${what}: IP total length`);
          assert.ok(pkt.length <= IP_MAX, `${what}: ${pkt.length} bytes`);
          assert.ok(ipHeaderOk(pkt), `${what}: IP header checksum`);
          assert.equal(u16(pkt, 20 + vnet.csumOffset), ones(pseudoSum(pkt, pkt[9]!, pkt.length - 20)), `${what}: the L4 checksum field must hold the pseudo-header sum`);
          if (!tcp) assert.equal(u16(pkt, 24), pkt.length - 20, `${what}: UDP length`);

          const segments = refSplit(vnet, pkt);
          assert.ok(segments !== null && segments.length >= 2, `${what}: the kernel could not split this write`);
          assert.ok(segments.length <= GRO_MAX_SEGS, `${what}: ${segments.length} segments in one write`);
          compareSplit(native.gsoSplit(w), segments, `${what}: the addon's own split`);
          const first = inputs[next];
          assert.ok(first !== undefined, `${what}: more packets written than given`);
          assert.equal(vnet.gsoSize, first.length - 20 - l4hdr, `${what}: gso_size must be the first segment's payload`);
          const key = flowKey(first);
          segments.forEach((s, k) => {
            const input = inputs[next + k];
            assert.ok(input !== undefined, `${what}: splits into more packets than were given`);
            assert.equal(flowKey(input), key, `${what}: input packets ${next} and ${next + k} of different flows were coalesced`);
            assert.ok(ipHeaderOk(s) && l4ChecksumOk(s), `${what}: segment ${k} has a bad checksum`);
            const want = expectedAfterResplit(input, first, k);
            assert.ok(equalBytes(s, want), `${what}: segment ${k} differs from input packet ${next + k}: ${firstDifference(s, want)}\n  got  ${showPacket(s)}\n  want ${showPacket(want)}\n  input ${showPacket(input)}`);
          });
          mergedWrites++;
          mergedPackets += segments.length;
          next += segments.length;
        });
        assert.equal(next, inputs.length, `the writes hold ${next} of the ${inputs.length} packets given`);
      }),
      150,
    );
    assert.ok(mergedWrites > 30 && mergedPackets > 3 * mergedWrites, `the generator hardly exercises coalescing: ${mergedWrites} writes, ${mergedPackets} packets`);
  });
});
