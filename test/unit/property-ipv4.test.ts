/**
 * Property-based tests of the IPv4 parsers: address and CIDR text
 * (src/net/ipv4.ts) against a string-splitting reference, and packet headers
 * (src/encap/ipv4.ts: validateIpv4, parseIpv4Header, writeIpv4Header) against
 * a validator written here from RFC 791, on random, mutated and garbage input.
 */
import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import fc from 'fast-check';

import { Ipv4Drop, parseIpv4Header, validateIpv4, writeIpv4Header } from '../../src/encap';
import { formatIpv4, formatPrefix, parseCidr, parseIpv4, prefixContains, prefixMask } from '../../src/net/ipv4';
import {
  checkProperty,
  garbageTextArb,
  mutatedTextArb,
  prefixArb,
  refFormatIpv4,
  refFormatPrefix,
  refMask,
  refParseIpv4,
  uint32Arb,
} from '../property';

// ---------------------------------------------------------------------------
// Reference text parsing: split and check each piece

const isAsciiDigits = (s: string): boolean => s.length > 0 && [...s].every((c) => c >= '0' && c <= '9');

/** "a.b.c.d/n": an address, one slash, a length of 1 or 2 ASCII digits up to 32 (Go's ParseCIDR also takes "/08"). */
function refParseCidr(text: string): { address: number; network: number; length: number } | undefined {
  const parts = text.split('/');
  if (parts.length !== 2) return undefined;
  const address = refParseIpv4(parts[0] as string);
  const lenText = parts[1] as string;
  if (address === undefined || !isAsciiDigits(lenText) || lenText.length > 2) return undefined;
  const length = Number(lenText);
  if (length > 32) return undefined;
  return { address, network: refMask(address, length), length };
}

// ---------------------------------------------------------------------------
// Text arbitraries

const octetTextArb = fc.oneof(
  fc.integer({ min: 0, max: 255 }).map(String),
  fc.constantFrom('256', '999', '00', '01', '007', '0x1', '', ' 1', '1 ', '+1', '-1', '1e2', '\u0661', '\uff11'),
);
const quadTextArb = fc.array(octetTextArb, { minLength: 3, maxLength: 5 }).map((o) => o.join('.'));
const lengthTextArb = fc.oneof(
  fc.integer({ min: 0, max: 32 }).map(String),
  fc.constantFrom('33', '99', '100', '08', '032', '', '-1', '+8', ' 8', '8 ', '1/2'),
);
const cidrTextArb = fc.oneof(
  fc.tuple(quadTextArb, lengthTextArb).map(([a, l]) => `${a}/${l}`),
  prefixArb().map(refFormatPrefix),
);
const addressLikeTextArb = fc.oneof(
  uint32Arb.map(refFormatIpv4),
  quadTextArb,
  cidrTextArb,
  mutatedTextArb(uint32Arb.map(refFormatIpv4)),
  mutatedTextArb(prefixArb().map(refFormatPrefix)),
  garbageTextArb,
);

describe('property: IPv4 address and CIDR text', () => {
  it('formatIpv4 and parseIpv4 round-trip every 32-bit address, and formatIpv4 matches the reference', () => {
    checkProperty(
      fc.property(uint32Arb, (addr) => {
        const text = formatIpv4(addr);
        assert.equal(text, refFormatIpv4(addr), `formatIpv4(${addr})`);
        assert.equal(parseIpv4(text), addr, `parseIpv4(${JSON.stringify(text)}) does not give ${addr} back`);
      }),
      1000,
    );
  });

  it('parseIpv4 agrees with the reference on random, mutated and garbage text, and returns an unsigned 32-bit integer', () => {
    checkProperty(
      fc.property(addressLikeTextArb, (text) => {
        const got = parseIpv4(text);
        assert.equal(got, refParseIpv4(text), `parseIpv4(${JSON.stringify(text)})`);
        if (got !== undefined) assert.equal(formatIpv4(got), text, `an accepted address ${JSON.stringify(text)} is not canonical`);
      }),
      3000,
    );
  });

  it('parseCidr agrees with the reference; the prefix is masked, holds the address, and formats canonically', () => {
    checkProperty(
      fc.property(addressLikeTextArb, (text) => {
        const got = parseCidr(text);
        const want = refParseCidr(text);
        if (want === undefined) {
          assert.equal(got, undefined, `parseCidr(${JSON.stringify(text)}) accepted what the reference refuses: ${JSON.stringify(got)}`);
          return;
        }
        assert.ok(got !== undefined, `parseCidr(${JSON.stringify(text)}) refused what the reference accepts`);
        assert.deepEqual(
          { address: got.address, network: got.prefix.network, length: got.prefix.length },
          want,
          `parseCidr(${JSON.stringify(text)})`,
        );
        assert.equal(((got.prefix.network & prefixMask(got.prefix.length)) >>> 0), got.prefix.network, 'network has host bits');
        assert.ok(prefixContains(got.prefix, got.address), 'the prefix does not contain the address');
        assert.equal(formatPrefix(got.prefix), refFormatPrefix(want), `formatPrefix of ${JSON.stringify(text)}`);
      }),
      3000,
    );
  });

  it('formatPrefix and parseCidr round-trip every masked prefix', () => {
    checkProperty(
      fc.property(prefixArb(), (p) => {
        const text = formatPrefix(p);
        assert.equal(text, refFormatPrefix(p));
        const back = parseCidr(text);
        assert.deepEqual(back, { address: p.network, prefix: p }, `parseCidr(${JSON.stringify(text)})`);
      }),
      1000,
    );
  });
});

// ---------------------------------------------------------------------------
// Reference header validation (RFC 791)

/** The header checksum is right when the 16-bit words, checksum included, sum to a multiple of 0xffff (one's complement "-0"). */
function refHeaderSumOk(bytes: Uint8Array, off: number, headerLen: number): boolean {
  let total = 0;
  for (let i = 0; i < headerLen; i += 2) total += bytes[off + i]! * 256 + bytes[off + i + 1]!;
  return total !== 0 && total % 0xffff === 0;
}

/**
 * RFC 791, in the order validateIpv4 documents: at least a minimal header
 * (20 bytes); Version 4; IHL (32-bit words) at least 5 and the header inside
 * the packet; Total Length equal to the packet's length; header checksum.
 */
function refValidate(bytes: Uint8Array, off: number, len: number): Ipv4Drop {
  if (len < 20) return Ipv4Drop.TooShort;
  const version = Math.floor(bytes[off]! / 16);
  if (version !== 4) return Ipv4Drop.Version;
  const headerLen = (bytes[off]! % 16) * 4;
  if (headerLen < 20 || headerLen > len) return Ipv4Drop.HeaderLength;
  if (bytes[off + 2]! * 256 + bytes[off + 3]! !== len) return Ipv4Drop.TotalLength;
  return refHeaderSumOk(bytes, off, headerLen) ? Ipv4Drop.Ok : Ipv4Drop.Checksum;
}

/** Writes a correct checksum into the header at `off` (reference arithmetic). */
function refSetChecksum(bytes: Uint8Array, off: number, headerLen: number): void {
  bytes[off + 10] = 0;
  bytes[off + 11] = 0;
  let total = 0;
  for (let i = 0; i < headerLen; i += 2) total += bytes[off + i]! * 256 + bytes[off + i + 1]!;
  const folded = total % 0xffff === 0 && total !== 0 ? 0xffff : total % 0xffff;
  const c = 0xffff - folded;
  bytes[off + 10] = Math.floor(c / 256);
  bytes[off + 11] = c % 256;
}

interface PacketModel {
  readonly tos: number;
  readonly id: number;
  readonly flagsFragment: number;
  readonly ttl: number;
  readonly protocol: number;
  readonly src: number;
  readonly dst: number;
  readonly options: Uint8Array;
  readonly payload: Uint8Array;
  /** Random bytes around the packet in its buffer. */
  readonly lead: Uint8Array;
  readonly tail: Uint8Array;
}

const packetModelArb: fc.Arbitrary<PacketModel> = fc.record({
  tos: fc.integer({ min: 0, max: 255 }),
  id: fc.integer({ min: 0, max: 0xffff }),
  flagsFragment: fc.integer({ min: 0, max: 0xffff }),
  ttl: fc.integer({ min: 0, max: 255 }),
  protocol: fc.integer({ min: 0, max: 255 }),
  src: uint32Arb,
  dst: uint32Arb,
  options: fc.integer({ min: 0, max: 10 }).chain((words) => fc.uint8Array({ minLength: words * 4, maxLength: words * 4 })),
  payload: fc.oneof(fc.uint8Array({ maxLength: 64 }), fc.integer({ min: 0, max: 1600 }).map((n) => new Uint8Array(n).fill(0xa5))),
  lead: fc.uint8Array({ maxLength: 7 }),
  tail: fc.uint8Array({ maxLength: 7 }),
});

interface Placed {
  readonly buf: Uint8Array;
  readonly off: number;
  readonly len: number;
}

/** Builds the packet byte by byte, with a reference checksum, inside a buffer with the random lead and tail. */
function buildPacket(m: PacketModel): Placed {
  const headerLen = 20 + m.options.length;
  const len = headerLen + m.payload.length;
  const buf = new Uint8Array(m.lead.length + len + m.tail.length);
  buf.set(m.lead, 0);
  buf.set(m.tail, m.lead.length + len);
  const off = m.lead.length;
  const put16 = (at: number, v: number): void => {
    buf[off + at] = Math.floor(v / 256) % 256;
    buf[off + at + 1] = v % 256;
  };
  buf[off] = 4 * 16 + headerLen / 4;
  buf[off + 1] = m.tos;
  put16(2, len);
  put16(4, m.id);
  put16(6, m.flagsFragment);
  buf[off + 8] = m.ttl;
  buf[off + 9] = m.protocol;
  put16(12, Math.floor(m.src / 65536));
  put16(14, m.src % 65536);
  put16(16, Math.floor(m.dst / 65536));
  put16(18, m.dst % 65536);
  buf.set(m.options, off + 20);
  buf.set(m.payload, off + headerLen);
  refSetChecksum(buf, off, headerLen);
  return { buf, off, len };
}

/** Damage to a valid packet: bytes changed (checksum fixed afterwards or not), the caller's length changed, or cut short. */
type PacketEdit =
  | { readonly kind: 'byte'; readonly at: number; readonly value: number; readonly fixChecksum: boolean }
  | { readonly kind: 'version-ihl'; readonly value: number; readonly fixChecksum: boolean }
  | { readonly kind: 'total-length'; readonly value: number; readonly fixChecksum: boolean }
  | { readonly kind: 'length'; readonly delta: number }
  | { readonly kind: 'cut'; readonly keep: number };

const packetEditArb: fc.Arbitrary<PacketEdit> = fc.oneof(
  fc.record({ kind: fc.constant('byte' as const), at: fc.nat(80), value: fc.integer({ min: 0, max: 255 }), fixChecksum: fc.boolean() }),
  fc.record({ kind: fc.constant('version-ihl' as const), value: fc.integer({ min: 0, max: 255 }), fixChecksum: fc.boolean() }),
  fc.record({
    kind: fc.constant('total-length' as const),
    value: fc.oneof(fc.integer({ min: 0, max: 0xffff }), fc.integer({ min: 0, max: 100 })),
    fixChecksum: fc.boolean(),
  }),
  fc.record({ kind: fc.constant('length' as const), delta: fc.integer({ min: -30, max: 30 }) }),
  fc.record({ kind: fc.constant('cut' as const), keep: fc.nat(90) }),
);

/** Applies edits in place; the length never leaves the buffer. */
function damage(p: Placed, edits: readonly PacketEdit[]): Placed {
  let len = p.len;
  const { buf, off } = p;
  const room = buf.length - off;
  const fix = (): void => {
    const headerLen = (buf[off]! % 16) * 4;
    if (headerLen >= 20 && headerLen <= len) refSetChecksum(buf, off, headerLen);
  };
  for (const e of edits) {
    switch (e.kind) {
      case 'byte':
        if (len > 0) buf[off + (e.at % len)] = e.value;
        if (e.fixChecksum) fix();
        break;
      case 'version-ihl':
        if (len > 0) buf[off] = e.value;
        if (e.fixChecksum) fix();
        break;
      case 'total-length':
        if (len >= 4) {
          buf[off + 2] = Math.floor(e.value / 256);
          buf[off + 3] = e.value % 256;
        }
        if (e.fixChecksum) fix();
        break;
      case 'length':
        len = Math.max(0, Math.min(room, len + e.delta));
        break;
      case 'cut':
        len = Math.min(len, e.keep);
        break;
    }
  }
  return { buf, off, len };
}

const damagedPacketArb: fc.Arbitrary<Placed> = fc
  .tuple(packetModelArb, fc.array(packetEditArb, { maxLength: 4 }))
  .map(([m, edits]) => damage(buildPacket(m), edits));

/** Any bytes at all, at a random place in a buffer. */
const randomBytesPacketArb: fc.Arbitrary<Placed> = fc
  .tuple(fc.uint8Array({ maxLength: 100 }), fc.nat(), fc.nat())
  .map(([buf, a, b]) => {
    const off = buf.length === 0 ? 0 : a % (buf.length + 1);
    return { buf, off, len: b % (buf.length - off + 1) };
  });

const describePlaced = (p: Placed): string =>
  `${p.len} bytes at offset ${p.off}: ${Buffer.from(p.buf.subarray(p.off, p.off + Math.min(p.len, 64))).toString('hex')}`;

describe('property: IPv4 headers (RFC 791)', () => {
  it('a packet built from a model is Ok, and parseIpv4Header gives every field of the model back', () => {
    checkProperty(
      fc.property(packetModelArb, (m) => {
        const p = buildPacket(m);
        assert.equal(validateIpv4(p.buf, p.off, p.len), Ipv4Drop.Ok, `valid packet refused: ${describePlaced(p)}`);
        const h = parseIpv4Header(p.buf, p.off, p.len);
        assert.ok(h !== undefined);
        const expected = {
          version: 4, ihl: 5 + m.options.length / 4, headerLength: 20 + m.options.length, tos: m.tos, totalLength: p.len,
          id: m.id, flags: Math.floor(m.flagsFragment / 0x2000), dontFragment: (Math.floor(m.flagsFragment / 0x4000) % 2) === 1,
          moreFragments: (Math.floor(m.flagsFragment / 0x2000) % 2) === 1, fragmentOffset: m.flagsFragment % 0x2000,
          ttl: m.ttl, protocol: m.protocol, src: m.src, dst: m.dst, options: m.options,
        };
        const { checksum, ...rest } = h;
        assert.deepEqual({ ...rest, options: Uint8Array.from(rest.options) }, { ...expected, options: Uint8Array.from(m.options) });
        assert.equal(checksum, p.buf[p.off + 10]! * 256 + p.buf[p.off + 11]!);
      }),
      800,
    );
  });

  it('validateIpv4 gives the reference verdict on mutated and random packets, reading only [off, off + len)', () => {
    checkProperty(
      fc.property(fc.oneof({ weight: 4, arbitrary: damagedPacketArb }, { weight: 1, arbitrary: randomBytesPacketArb }), (p) => {
        const want = refValidate(p.buf, p.off, p.len);
        const got = validateIpv4(p.buf, p.off, p.len);
        assert.equal(got, want, `validateIpv4 verdict ${got}, reference ${want}, for ${describePlaced(p)}`);
        // The same bytes alone in a buffer of their own (nothing before or after them) give the same verdict.
        const alone = p.buf.slice(p.off, p.off + p.len);
        assert.equal(validateIpv4(alone, 0, p.len), got, `verdict depends on bytes outside the packet: ${describePlaced(p)}`);
      }),
      3000,
    );
  });

  it('parseIpv4Header never throws, copies options only from inside the packet, and reads the fields as the reference', () => {
    checkProperty(
      fc.property(fc.oneof(damagedPacketArb, randomBytesPacketArb), (p) => {
        const h = parseIpv4Header(p.buf, p.off, p.len);
        if (p.len < 20) {
          assert.equal(h, undefined, `a ${p.len}-byte packet parsed`);
          return;
        }
        assert.ok(h !== undefined, `a ${p.len}-byte packet did not parse`);
        const b = (i: number): number => p.buf[p.off + i]!;
        const headerLen = (b(0) % 16) * 4;
        assert.equal(h.version, Math.floor(b(0) / 16));
        assert.equal(h.headerLength, headerLen);
        assert.equal(h.totalLength, b(2) * 256 + b(3));
        assert.equal(h.id, b(4) * 256 + b(5));
        assert.equal(h.src, ((b(12) * 256 + b(13)) * 256 + b(14)) * 256 + b(15));
        assert.equal(h.dst, ((b(16) * 256 + b(17)) * 256 + b(18)) * 256 + b(19));
        const optionsEnd = Math.max(20, Math.min(headerLen, p.len));
        assert.deepEqual(Uint8Array.from(h.options), p.buf.slice(p.off + 20, p.off + optionsEnd), `options of ${describePlaced(p)}`);
      }),
      1500,
    );
  });

  it('writeIpv4Header writes a header that validates and parses back to its fields', () => {
    checkProperty(
      fc.property(packetModelArb, (m) => {
        const len = 20 + m.payload.length;
        const buf = new Uint8Array(m.lead.length + len);
        buf.set(m.lead);
        buf.set(m.payload, m.lead.length + 20);
        writeIpv4Header(buf, m.lead.length, {
          tos: m.tos, totalLength: len, id: m.id, flagsFragment: m.flagsFragment, ttl: m.ttl, protocol: m.protocol, src: m.src, dst: m.dst,
        });
        assert.equal(refValidate(buf, m.lead.length, len), Ipv4Drop.Ok, 'the reference refuses the written header');
        assert.deepEqual(buf.slice(0, m.lead.length), m.lead, 'bytes before the header changed');
        const h = parseIpv4Header(buf, m.lead.length, len);
        assert.ok(h !== undefined);
        assert.deepEqual(
          [h.tos, h.totalLength, h.id, h.flags * 0x2000 + h.fragmentOffset, h.ttl, h.protocol, h.src, h.dst],
          [m.tos, len, m.id, m.flagsFragment, m.ttl, m.protocol, m.src, m.dst],
        );
      }),
      800,
    );
  });
});
